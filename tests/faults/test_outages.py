"""Outages: PostgreSQL gone for a while, the relay down, the SQLite disk full."""

from __future__ import annotations

import contextlib
import random
import smtplib
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from aiosmtpd.controller import Controller

from notifications.render import build_environment
from notifications.sender import Sender, SenderSettings
from notifications.transports import SmtpTransport
from storage import outbox
from storage.engine import make_engine, session_factory
from storage.schema import upgrade
from tests.support.daemon import Daemon, Site, wait_for
from tests.support.postgres import PostgresServer, find_bindir, running_server
from tests.support.services import free_port, missing
from tests.support.smtp_sink import SinkHandler

if TYPE_CHECKING:
    from collections.abc import Iterator

SUPPORT = "support@example.com"
FAST_STAGES = """[sla]
poll_interval_seconds = 0.2
"""


def customer_mail(i: int, body: str = "The export fails.") -> EmailMessage:
    """A distinct customer message from its own sender."""
    msg = EmailMessage()
    msg["From"] = f"user{i}@customer{i}.example"
    msg["To"] = SUPPORT
    msg["Subject"] = f"Outage test {i}"
    msg["Message-ID"] = f"<outage-{i}@customer.example>"
    msg.set_content(body)
    return msg


def send(site: Site, msg: EmailMessage) -> int:
    """Deliver over SMTP; the reply code of the transaction (250, or the 4xx/5xx refusal)."""
    try:
        with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=30) as smtp:
            smtp.send_message(msg, to_addrs=[SUPPORT])
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code
    return 250


def send_until_accepted(site: Site, msg: EmailMessage, timeout: float = 30.0) -> None:
    """Retry like an MTA until 250, bounded in time."""
    wait_for(lambda: send(site, msg) == 250, timeout=timeout, interval=0.5)


def events(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    """Log events called ``name``."""
    return [e for e in daemon.log_events() if e.get("event") == name]


# --- PostgreSQL stopped and started ---------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, so stopping it disturbs no other test."""
    bindir = find_bindir()
    if bindir is None:
        missing("PostgreSQL server binaries", "apt-get install -y postgresql")
    with running_server(bindir, "pg-outage-") as server:
        yield server


@pytest.mark.timeout(180)
def test_postgres_outage_answers_451_then_resumes_losing_nothing(
    tmp_path: Path, own_postgres: PostgresServer
) -> None:
    """While PostgreSQL is down SMTP says 451 and the stages back off; afterwards all resumes."""
    url = own_postgres.create_database("outage")
    site = Site(tmp_path, extra=FAST_STAGES)
    site.write()
    text = site.config.read_text(encoding="utf-8")
    sqlite_line = next(line for line in text.splitlines() if line.startswith("url = "))
    site.config.write_text(text.replace(sqlite_line, f'url = "{url}"'), encoding="utf-8")
    daemon = Daemon(site).start()
    assert send(site, customer_mail(1)) == 250
    wait_for(lambda: len(site.outgoing_messages()) == 1, timeout=30)
    own_postgres.stop()
    during = [send(site, customer_mail(2)), send(site, customer_mail(3))]
    wait_for(lambda: len(events(daemon, "stage.pass_failed")) >= 3, timeout=30)
    own_postgres.start()
    for i in (2, 3, 4):  # the refused ones again, as an MTA would, and a new one
        send_until_accepted(site, customer_mail(i), timeout=60)
    wait_for(lambda: len(site.outgoing_messages()) == 4, timeout=60)
    assert daemon.stop() == 0
    assert during == [451, 451]
    failed_stages = {e.get("stage") for e in events(daemon, "stage.pass_failed")}
    assert {"process", "send", "schedule"} <= failed_stages
    commit_failures = events(daemon, "message.commit_failed")
    assert len(commit_failures) >= 2
    with own_postgres.connect("outage") as conn:
        stored = conn.execute("SELECT status, count(*) FROM inbound GROUP BY status").fetchall()
        acks = conn.execute("SELECT count(*) FROM outbox WHERE kind = 'ack'").fetchone()
    assert stored == [("processed", 4)]
    assert acks == (4,)


# --- the outgoing relay down ----------------------------------------------------------


@contextlib.contextmanager
def relay(handler: SinkHandler, port: int) -> Iterator[None]:
    """An aiosmtpd sink on a fixed port (so it can come back where it was)."""
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=5.0)
    controller.start()
    try:
        yield
    finally:
        controller.stop()


def ack_context(ref: int) -> dict[str, Any]:
    """What the process stage puts in an acknowledgement's context."""
    return {
        "case_ref": ref,
        "ref_token": f"[#{ref}]",
        "subject": "Export job fails",
        "customer_name": "User",
        "customer_address": f"user{ref}@acme.example",
        "plan": "standard",
        "priority": "medium",
        "priority_reason": "default",
        "first_response_words": "within 9 business hours",
        "first_response_due": "2026-11-30T15:00:00+00:00",
        "first_response_due_local": "Mon 30 Nov 2026 15:00 UTC",
        "support_name": "Example Support",
        "support_address": SUPPORT,
    }


@pytest.mark.timeout(120)
def test_relay_outage_holds_the_outbox_and_drains_it_later(tmp_path: Path) -> None:
    """With the relay down rows stay queued with retries; when it returns each goes out once."""
    engine = make_engine(f"sqlite:///{tmp_path / 'relay.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    start = datetime.now(UTC)
    with sessions.begin() as s:
        for ref in range(1000, 1006):
            outbox.enqueue(
                s, kind="ack", case_id=None, to_addrs=[f"user{ref}@acme.example"],
                subject=f"Re: [#{ref}] Export job fails", template="ack",
                context=ack_context(ref), message_id=f"<ack-{ref}@example.com>",
                in_reply_to=None, references=[], dedupe_key=f"ack:case:{ref}",
                now=start + timedelta(milliseconds=ref - 1000),
            )  # fmt: skip
    port = free_port()
    settings = SenderSettings(
        from_name="Support", from_addr=SUPPORT, loop_marker=SUPPORT,
        backoff_base=timedelta(milliseconds=200), backoff_max=timedelta(seconds=1),
    )  # fmt: skip
    transport = SmtpTransport("127.0.0.1", port, starttls=False, timeout=5.0)
    sender = Sender(
        sessions, transport, build_environment(), settings,
        structlog.get_logger("test.sender"), rng=random.Random(3),
    )  # fmt: skip
    for _ in range(6):  # the relay is down: every attempt is a temporary failure
        assert sender.run_once(datetime.now(UTC)) == 0
    with sessions() as s:
        held = outbox.counts(s)
    handler = SinkHandler()
    with relay(handler, port):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sender.run_once(datetime.now(UTC))
            with sessions() as s:
                if outbox.counts(s)["queued"] == 0:
                    break
            time.sleep(0.1)
    engine.dispose()
    assert held["queued"] == 6
    assert held.get("failed", 0) == 0
    delivered = [d.message()["Message-ID"] for d in handler.deliveries]
    assert sorted(delivered) == [f"<ack-{ref}@example.com>" for ref in range(1000, 1006)]


# --- SQLite on a full or read-only disk -------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "3m") -> Iterator[Path]:
    """A tiny tmpfs mounted at ``path`` (root only), unmounted afterwards."""
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def disk_site(tmp_path: Path, disk: Path) -> Site:
    """A site whose SQLite database lives on ``disk``."""
    site = Site(tmp_path, extra=FAST_STAGES)
    site.write()
    text = site.config.read_text(encoding="utf-8")
    site.config.write_text(text.replace(str(tmp_path / "cases.db"), str(disk / "cases.db")))
    return site


def integrity(db: Path) -> str:
    """PRAGMA integrity_check of the database file."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.timeout(180)
def test_full_disk_answers_451_and_recovers_without_corruption(tmp_path: Path) -> None:
    """When the database's disk fills SMTP says 451 and logs why; freed space brings 250 back."""
    with small_tmpfs(tmp_path / "disk") as disk:
        site = disk_site(tmp_path, disk)
        daemon = Daemon(site).start()
        filler = disk / "filler"
        with filler.open("wb") as fh, contextlib.suppress(OSError):
            for _ in range(64):  # at most 64 MiB; the disk is far smaller
                fh.write(bytes(1024 * 1024))
                fh.flush()
        codes = [send(site, customer_mail(i, "word " * 20_000)) for i in range(3)]
        filler.unlink()
        send_until_accepted(site, customer_mail(9))
        for i in range(3):
            send_until_accepted(site, customer_mail(i, "word " * 20_000))
        wait_for(lambda: len(site.outgoing_messages()) == 4, timeout=60)
        assert daemon.stop() == 0
        assert integrity(disk / "cases.db") == "ok"
    assert 451 in codes
    # A commit that fits in WAL pages the file already has needs no new disk block: its
    # 250 is as durable as any (each such message is one of the four acknowledged above,
    # once: a second copy sent after the disk was freed is a duplicate, not a case).
    assert codes.count(250) < len(codes)
    failures = events(daemon, "message.commit_failed")
    assert any("full" in str(e.get("detail", "")) for e in failures), failures
