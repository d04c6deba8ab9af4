"""End to end: the real daemon reads a real Dovecot mailbox, by IDLE and by polling, once."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from storage.engine import make_engine, session_factory
from storage.models import Inbound, MailboxState, Message
from tests.support.daemon import Daemon, Site, wait_for
from tests.support.mail import plain_mail

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.dovecot import DovecotServer

BURST = 60


def customer_mail(subject: str, sender: str) -> tuple[str, bytes]:
    """A customer message and its Message-ID."""
    body = f"{subject}: please help, nothing works since this morning."
    msg = plain_mail(f"Customer <{sender}>", subject, body, return_path=f"<{sender}>")
    return str(msg["Message-ID"]), msg.as_bytes().replace(b"\n", b"\r\n")


def imap_site(root: Path, dovecot: DovecotServer, folder: str, **keys: object) -> Site:
    """A site whose config has one [[imap]] table for alice's ``folder`` on the fixture."""
    values: dict[str, object] = {
        "name": "support",
        "host": dovecot.host,
        "port": dovecot.tls_port,
        "tls": "ssl",
        "tls_ca_file": str(dovecot.ca_file),
        "username": "alice",
        "password": "secret",
        "folder": folder,
        "processed_folder": f"{folder}done",
        "lease_seconds": 3,
        **keys,
    }
    lines = "\n".join(f"{k} = {_toml(v)}" for k, v in values.items())
    site = Site(root, extra=f"[[imap]]\n{lines}\n")
    site.write()
    return site


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


class Db:
    """Read-only look at the site's database from the test process."""

    def __init__(self, site: Site) -> None:
        self.engine = make_engine(f"sqlite:///{site.root / 'cases.db'}")
        self.sessions = session_factory(self.engine)

    def inbound_ids(self) -> list[str | None]:
        """source_ref of every stored IMAP message."""
        with self.sessions() as s:
            return list(s.scalars(select(Inbound.source_ref).where(Inbound.source == "imap")))

    def settled(self) -> int:
        """How many IMAP messages the process stage has dealt with."""
        with self.sessions() as s:
            rows = s.scalars(select(Inbound.status).where(Inbound.source == "imap"))
            return sum(status != "received" for status in rows)

    def lease_owner(self, name: str) -> str | None:
        """Who holds mailbox ``name``'s lease."""
        with self.sessions() as s:
            return s.get_one(MailboxState, name).lease_owner

    def case_message_ids(self) -> Counter[str | None]:
        """How often each Message-ID appears among inbound case messages."""
        with self.sessions() as s:
            ids = s.scalars(select(Message.message_id).where(Message.direction == "in"))
            return Counter(ids)


@pytest.fixture
def folder(dovecot: DovecotServer) -> str:
    """A fresh folder on the shared server."""
    return dovecot.new_folder()


@pytest.fixture
def running() -> Iterator[list[Daemon]]:
    """Daemons started by a test; any still running are stopped afterwards."""
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()


@pytest.mark.parametrize("idle", [True, False], ids=["idle", "polling"])
def test_appended_mail_becomes_cases_and_is_moved(
    tmp_path: Path,
    dovecot: DovecotServer,
    folder: str,
    running: list[Daemon],
    idle: bool,
) -> None:
    """Mail appended while the daemon runs is stored, processed into cases, and moved away."""
    site = imap_site(tmp_path, dovecot, folder, idle=idle, poll_interval_seconds=0.3)
    daemon = Daemon(site).start()
    running.append(daemon)
    db = Db(site)
    wait_for(lambda: any(e["event"] == "imap.connected" for e in daemon.log_events()))
    time.sleep(0.3)  # the first pass is done; the poller now IDLEs or sleeps
    sent = []
    for i, sender in enumerate(["ann@customer.example", "bob@other.example"]):
        message_id, raw = customer_mail(f"Export fails {i}", sender)
        began = time.monotonic()
        dovecot.append(folder, raw)
        wait_for(lambda n=i + 1: len(db.inbound_ids()) == n, timeout=10, interval=0.02)
        sent.append((message_id, time.monotonic() - began))
    wait_for(lambda: db.settled() == 2, timeout=15)
    wait_for(lambda: dovecot.messages(folder) == {}, timeout=5)
    assert len(dovecot.messages(f"{folder}done")) == 2
    assert all(db.case_message_ids()[mid] == 1 for mid, _ in sent)
    assert {c["customer"] for c in site.cli_json("cases", "list")} == {
        "ann@customer.example",
        "bob@other.example",
    }
    print(f"ingest latency ({'idle' if idle else 'poll 0.3 s'}):", [round(t, 2) for _, t in sent])  # noqa: T201
    assert daemon.stop() == 0
    assert db.lease_owner("support") is None  # a clean stop hands the mailbox over at once
    db.engine.dispose()


def test_sigkill_mid_burst_loses_and_doubles_nothing(
    tmp_path: Path, dovecot: DovecotServer, folder: str, running: list[Daemon]
) -> None:
    """A daemon SIGKILLed mid-burst and restarted leaves each message in one case message, once."""
    ids = []
    for i in range(BURST):
        message_id, raw = customer_mail(f"Burst {i}", f"user{i}@customer.example")
        dovecot.append(folder, raw)
        ids.append(message_id)
    site = imap_site(tmp_path, dovecot, folder, batch_size=5, idle=False, poll_interval_seconds=0.2)
    db = Db(site)
    first = Daemon(site).start()
    running.append(first)
    wait_for(lambda: len(db.inbound_ids()) >= 1, timeout=15, interval=0.005)
    first.kill()
    killed_at = len(db.inbound_ids())
    second = Daemon(site).start()
    running.append(second)
    wait_for(lambda: len(db.inbound_ids()) == BURST and db.settled() == BURST, timeout=30)
    wait_for(lambda: dovecot.messages(folder) == {}, timeout=10)
    assert second.stop() == 0
    refs = db.inbound_ids()
    assert len(refs) == len(set(refs)) == BURST
    counts = db.case_message_ids()
    assert {mid: counts[mid] for mid in ids} == dict.fromkeys(ids, 1)
    moved = dovecot.messages(f"{folder}done")
    assert len(moved) == BURST
    recovered = sum(e["event"] == "message.already_stored" for e in second.log_events())
    print(f"killed after {killed_at} of {BURST} stored; {recovered} moved without storing")  # noqa: T201
    db.engine.dispose()


def test_imap_check_reports_folders_and_unprocessed(
    tmp_path: Path, dovecot: DovecotServer, folder: str
) -> None:
    """``imap check`` lists folders and counts waiting mail (exit 0), or exits 2 with the reason."""
    dovecot.append(folder, customer_mail("Waiting", "ann@customer.example")[1])
    site = imap_site(tmp_path, dovecot, folder)
    report = site.cli_json("imap", "check")[0]
    assert report["error"] is None
    assert folder in report["folders"]
    assert report["unprocessed"] == 1
    bad = imap_site(tmp_path, dovecot, folder, password="Tr0ub4dor&3")
    proc = bad.cli("imap", "check", check=False)
    assert proc.returncode == 2
    assert "AUTHENTICATIONFAILED" in proc.stderr.decode()
    assert b"Tr0ub4dor&3" not in proc.stdout + proc.stderr
