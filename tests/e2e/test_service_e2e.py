"""The daemon as a system service, over real sockets: sd_notify, signals and HTTP probes."""

from __future__ import annotations

import email
import email.utils
import json
import signal
import smtplib
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import Daemon, Site, wait_for
from tests.support.mail import plain_mail
from tests.support.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

RELAY_PASSWORD = "relay-pw-7c1e9a0f"
REPLY_SECRET = "reply-secret-3b5d8e21"


def customer_mail(subject: str, sender: str = "alice@customer.example") -> EmailMessage:
    """A plain customer message with a unique Message-ID."""
    return plain_mail(sender, subject, "Our export stopped working this morning, please help.")


def send(site: Site, msg: EmailMessage) -> None:
    """Deliver one message over SMTP."""
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=10) as s:
        s.sendmail(str(msg["From"]), ["support@example.com"], msg.as_bytes())


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """An abstract datagram socket standing in for systemd, named in the daemon's environment."""
    name = f"mail2case-e2e-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(0.5)
        monkeypatch.setenv("NOTIFY_SOCKET", f"@{name}")
        monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield sock


def next_datagram(sock: socket.socket, key: str, timeout: float = 20.0) -> dict[str, str]:
    """The next datagram holding ``key``, skipping others; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            continue
        fields = dict(line.split("=", 1) for line in data.splitlines())
        if key in fields:
            return fields
    raise AssertionError(f"no {key} datagram within {timeout}s")


def http_site(tmp_path: Path, extra: str = "") -> tuple[Site, int]:
    """A site with the HTTP probes on a free loopback port."""
    port = free_port()
    site = Site(tmp_path, extra=f'[http]\nhost = "127.0.0.1"\nport = {port}\n{extra}')
    site.write()
    return site, port


def get(port: int, path: str) -> tuple[int, bytes]:
    """GET a path from the probes; returns status and body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by the Prometheus client's own parser."""
    status, body = get(port, "/metrics")
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_ready_after_listening_then_watchdog_and_stopping(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    """READY=1 comes once SMTP listens; WATCHDOG=1 pings follow; SIGTERM brings STOPPING=1."""
    site = Site(tmp_path)
    site.write()
    daemon = Daemon(site)
    starter = threading.Thread(target=daemon.start, daemon=True)
    starter.start()
    ready = next_datagram(notify_socket, "READY")
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=5) as s:
        assert s.noop()[0] == 250  # listening at the moment READY=1 was sent
    assert ready["STATUS"].startswith("received 0")
    starter.join(30)
    pings = [next_datagram(notify_socket, "WATCHDOG", timeout=5) for _ in range(3)]
    assert all(p["WATCHDOG"] == "1" for p in pings)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    assert next_datagram(notify_socket, "STOPPING")["STOPPING"] == "1"
    assert daemon.stop() == 0


def test_status_line_counts_messages(tmp_path: Path, notify_socket: socket.socket) -> None:
    """STATUS= reports what was received and processed."""
    site = Site(tmp_path)
    site.write()
    daemon = Daemon(site).start()
    try:
        send(site, customer_mail("Counting"))

        def counted() -> bool:
            status = next_datagram(notify_socket, "STATUS")["STATUS"]
            return status.startswith("received 1, processed 1")

        wait_for(counted, timeout=20)
    finally:
        assert daemon.stop() == 0


def write_template_dir(root: Path) -> Path:
    """An override directory whose acknowledgement text is recognisable."""
    directory = root / "templates"
    directory.mkdir()
    (directory / "ack.txt.j2").write_text("Custom acknowledgement from the reloaded templates.\n")
    return directory


def test_sighup_applies_new_customer_and_templates(tmp_path: Path) -> None:
    """After SIGHUP a new premier customer and new templates apply to the next case, same port."""
    site = Site(tmp_path)
    site.write()
    daemon = Daemon(site).start()
    try:
        templates = write_template_dir(tmp_path)
        new_port = free_port()
        text = site.config.read_text().replace(f"port = {site.smtp_port}", f"port = {new_port}")
        site.config.write_text(
            text
            + f'\n[templates]\ndirectory = "{templates}"\n'
            + '[[customers]]\nname = "Acme"\ndomains = ["acme.example"]\nplan = "premier"\n'
        )
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        reloaded = wait_for(
            lambda: [e for e in daemon.log_events() if e["event"] == "config.reloaded"]
        )
        assert "customers" in reloaded[0]["applied"]
        assert "templates_dir" in reloaded[0]["applied"]
        assert reloaded[0]["needs_restart"] == ["smtp.port"]
        send(site, customer_mail("After reload", sender="bob@acme.example"))
        case = wait_for(lambda: site.cli_json("cases", "list"))[0]
        assert case["plan"] == "premier"
        ack = email.message_from_bytes(wait_for(site.outgoing_messages)[0], policy=default_policy)
        body = ack.get_body(preferencelist=("plain",))
        assert body is not None
        assert "Custom acknowledgement" in body.get_content()
    finally:
        assert daemon.stop() == 0


def test_sighup_with_bad_config_keeps_the_old_one(tmp_path: Path) -> None:
    """A bad file on SIGHUP is logged as config.reload_failed, and the daemon runs on unchanged."""
    site = Site(tmp_path)
    site.write()
    daemon = Daemon(site).start()
    good = site.config.read_text()
    try:
        site.config.write_text(
            good + '\n[[customers]]\nname = "Acme"\ndomains = ["acme.example"]\nplan = "gold"\n'
        )
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        failed = wait_for(
            lambda: [e for e in daemon.log_events() if e["event"] == "config.reload_failed"]
        )
        assert any("customers[0].plan" in p for p in failed[0]["problems"])
        assert daemon.proc.poll() is None
        site.config.write_text(good)  # for the CLI below; the daemon is not told
        send(site, customer_mail("Still served", sender="bob@acme.example"))
        assert wait_for(lambda: site.cli_json("cases", "list"))[0]["plan"] == "standard"
    finally:
        assert daemon.stop() == 0


def _burst(site: Site, accepted: list[str], stop_at: threading.Event) -> None:
    """Send until refused, recording the Message-ID of every mail answered 250."""
    for i in range(200):
        msg = customer_mail(f"Burst {i}")
        try:
            send(site, msg)
        except (OSError, smtplib.SMTPException):
            return
        accepted.append(str(msg["Message-ID"]))
        if len(accepted) == 10:
            stop_at.set()


def stored_message_ids(site: Site) -> set[str]:
    """Message-IDs of every raw message in the site's database."""
    with sqlite3.connect(site.root / "cases.db") as db:
        rows = db.execute("SELECT raw FROM inbound_raw").fetchall()
    return {str(email.message_from_bytes(r[0])["Message-ID"]) for r in rows}


def test_sigterm_during_burst_loses_nothing(tmp_path: Path) -> None:
    """Every message answered 250 before and during a SIGTERM is in the database after exit 0."""
    site = Site(tmp_path)
    site.write()
    daemon = Daemon(site).start()
    accepted: list[str] = []
    ten_sent = threading.Event()
    senders = [
        threading.Thread(target=_burst, args=(site, accepted, ten_sent), daemon=True)
        for _ in range(4)
    ]
    for t in senders:
        t.start()
    assert ten_sent.wait(30)
    assert daemon.stop() == 0
    for t in senders:
        t.join(30)
    assert len(accepted) >= 10
    assert set(accepted) <= stored_message_ids(site)
    assert any(e["event"] == "daemon.stopped" for e in daemon.log_events())


def test_probes_and_metrics_over_http(tmp_path: Path) -> None:
    """/healthz and /readyz answer 200, and /metrics counters move after a message."""
    site, port = http_site(tmp_path)
    daemon = Daemon(site).start()
    try:
        assert get(port, "/healthz")[0] == 200
        _, body = wait_for(lambda: (r := get(port, "/readyz"))[0] == 200 and r)
        assert json.loads(body)["ready"] is True
        assert get(port, "/nowhere")[0] == 404
        before = samples(port)
        send(site, customer_mail("Metrics please"))
        after = wait_for(
            lambda: (s := samples(port)).get(("mail2case_outbox_sent_total", ()), 0) >= 1 and s
        )
    finally:
        assert daemon.stop() == 0
    assert after[("mail2case_messages_received_total", (("source", "smtp"),))] == 1
    assert after[("mail2case_messages_processed_total", (("outcome", "processed"),))] == 1
    opened = [v for (n, _), v in after.items() if n == "mail2case_cases_opened_total"]
    assert opened == [1]
    assert after[("mail2case_message_processing_seconds_count", ())] == 1
    assert after[("mail2case_outbox_messages", (("status", "sent"),))] == 1
    assert ("mail2case_messages_received_total", (("source", "smtp"),)) not in before


def test_readyz_reports_an_unreachable_mailbox(tmp_path: Path) -> None:
    """A configured IMAP mailbox that cannot be reached makes /readyz answer 503 with the reason."""
    dead = free_port()
    imap = (
        f'[[imap]]\nname = "helpdesk"\nhost = "127.0.0.1"\nport = {dead}\ntls = "none"\n'
        'username = "support"\npassword = "x"\n'
    )
    site, port = http_site(tmp_path, imap)
    daemon = Daemon(site).start()
    try:
        status, body = get(port, "/readyz")
        assert status == 503
        detail = json.loads(body)
        assert detail["ready"] is False
        assert "imap:helpdesk" in detail["problems"]
        assert get(port, "/healthz")[0] == 200
    finally:
        assert daemon.stop() == 0


def test_secrets_never_logged(tmp_path: Path) -> None:
    """The relay password and reply secret appear neither in a daemon's log nor in check-config."""
    site = Site(
        tmp_path,
        extra=f'[agents]\nreply_secret = "{REPLY_SECRET}"\nteam_address = "team@example.com"\n',
    )
    site.write()
    text = site.config.read_text().replace(
        "[outgoing]\n", f'[outgoing]\nusername = "relay"\npassword = "{RELAY_PASSWORD}"\n'
    )
    site.config.write_text(text.replace('format = "json"', 'format = "json"\nlevel = "debug"'))
    checked = site.cli("check-config")
    daemon = Daemon(site).start()
    try:
        send(site, customer_mail("Secret test"))
        wait_for(site.outgoing_messages)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: any(e["event"] == "config.reloaded" for e in daemon.log_events()))
    finally:
        assert daemon.stop() == 0
    output = checked.stdout + checked.stderr + daemon.log.read_bytes()
    for secret in (RELAY_PASSWORD, REPLY_SECRET):
        assert secret.encode() not in output
    events: list[dict[str, Any]] = daemon.log_events()
    assert all({"event", "level", "timestamp"} <= e.keys() for e in events)
