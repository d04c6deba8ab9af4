"""SMTP abuse against the real daemon on 127.0.0.1: it answers per RFC 5321 and stays up."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import time
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest

from tests.support.daemon import Daemon, Site

if TYPE_CHECKING:
    from collections.abc import Iterator

SUPPORT = "support@example.com"
IDLE_SECONDS = 1.0
MAX_CONNECTIONS = 5
PER_CLIENT = 3
SESSION_SECONDS = 5.0
MAX_COMMANDS = 50
READ_TIMEOUT = 10.0
LIMITS = f"""max_recipients = 3
data_timeout_seconds = {IDLE_SECONDS}
max_connections = {MAX_CONNECTIONS}
max_connections_per_client = {PER_CLIENT}
max_session_seconds = {SESSION_SECONDS}
max_commands = {MAX_COMMANDS}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One daemon with tight SMTP limits for the whole module, stopped cleanly at the end."""
    site = Site(tmp_path_factory.mktemp("abuse"))
    site.write()
    text = site.config.read_text(encoding="utf-8")
    site.config.write_text(
        text.replace("max_message_size = 200000\n", f"max_message_size = 200000\n{LIMITS}")
    )
    daemon = Daemon(site).start()
    yield site
    assert daemon.stop() == 0


class Wire:
    """A raw SMTP conversation: send lines, read complete (multi-line) replies."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        # Other loopback addresses (127.0.0.2, ...) are other clients to the server.
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=READ_TIMEOUT, source_address=(source, 0)
        )
        self.buffer = b""

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send bytes as they are (pipelining included)."""
        self.sock.sendall(data)

    def reply(self) -> tuple[int, bytes]:
        """The next complete reply: its code and its last line ((0, b'') if the server closed)."""
        while True:
            lines = self.buffer.split(b"\r\n")
            for index, line in enumerate(lines[:-1]):
                if len(line) >= 4 and line[3:4] == b" ":  # the last line of a reply
                    self.buffer = b"\r\n".join(lines[index + 1 :])
                    return int(line[:3]), line
            chunk = self.sock.recv(65536)
            if not chunk:
                return 0, b""
            self.buffer += chunk

    def command(self, line: str | bytes) -> int:
        """Send one command line and return the reply code."""
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()[0]


@contextlib.contextmanager
def wire(site: Site) -> Iterator[Wire]:
    """A connection past the greeting, which must be 220."""
    w = Wire(site.smtp_port)
    try:
        assert w.reply()[0] == 220
        yield w
    finally:
        w.close()


def customer_mail(subject: str) -> EmailMessage:
    """A plain customer message."""
    msg = EmailMessage()
    msg["From"] = "alice@customer.example"
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg.set_content("The export fails.")
    return msg


def assert_still_serving(site: Site) -> None:
    """A normal message afterwards is still accepted with 250."""
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=READ_TIMEOUT) as smtp:
        refused = smtp.send_message(customer_mail("still there"), to_addrs=[SUPPORT])
    assert refused == {}


def test_too_many_recipients_get_452(site: Site) -> None:
    """Recipients past max_recipients are answered 452 (RFC 5321 4.5.3.1.10), the rest kept."""
    with wire(site) as w:
        assert w.command("EHLO client.example") == 250
        assert w.command("MAIL FROM:<alice@customer.example>") == 250
        codes = [w.command(f"RCPT TO:<support+{i}@example.com>") for i in range(5)]
        assert codes == [250, 250, 250, 452, 452]
    assert_still_serving(site)


def test_oversize_message_is_refused_with_552(site: Site) -> None:
    """A declared SIZE or DATA past max_message_size gets 552 and nothing is stored."""
    with wire(site) as w:
        assert w.command("EHLO client.example") == 250
        assert w.command("MAIL FROM:<alice@customer.example> SIZE=900000") == 552
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=READ_TIMEOUT) as smtp:
        big = customer_mail("huge")
        big.set_content("x" * 300_000)
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            smtp.sendmail("alice@customer.example", [SUPPORT], big.as_bytes())
    assert refused.value.smtp_code == 552
    assert_still_serving(site)


def test_idle_client_is_disconnected(site: Site) -> None:
    """A client that says nothing for longer than the idle timeout is dropped."""
    with wire(site) as w:
        assert w.command("EHLO slow.example") == 250
        started = time.monotonic()
        code, _ = w.reply()  # blocks until the server closes (or says 421 and closes)
        waited = time.monotonic() - started
    assert code in {0, 421}
    assert IDLE_SECONDS * 0.5 < waited < READ_TIMEOUT
    assert_still_serving(site)


def test_connections_past_the_limit_get_421(site: Site) -> None:
    """The connection after max_connections is answered 421 and closed; freed slots work again."""
    sources = ["127.0.0.1"] * PER_CLIENT + ["127.0.0.2"] * (MAX_CONNECTIONS - PER_CLIENT)
    held = [Wire(site.smtp_port, source) for source in sources]
    try:
        assert [w.reply()[0] for w in held] == [220] * MAX_CONNECTIONS
        extra = Wire(site.smtp_port, "127.0.0.3")
        try:
            assert extra.reply()[0] == 421
            assert extra.reply()[0] == 0  # and closed
        finally:
            extra.close()
    finally:
        for w in held:
            w.close()
    deadline = time.monotonic() + READ_TIMEOUT
    while time.monotonic() < deadline:  # the server notices the closes asynchronously
        with contextlib.suppress(smtplib.SMTPException, OSError):
            assert_still_serving(site)
            return
        time.sleep(0.1)
    assert_still_serving(site)


def wait_until_serving(site: Site) -> None:
    """The server notices closed connections asynchronously: retry a normal delivery."""
    deadline = time.monotonic() + READ_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            assert_still_serving(site)
            return
        time.sleep(0.1)
    assert_still_serving(site)


def test_one_client_cannot_take_every_connection(site: Site) -> None:
    """Past max_connections_per_client one host gets 421; another host is still served."""
    held = [Wire(site.smtp_port, "127.0.0.4") for _ in range(PER_CLIENT)]
    try:
        assert [w.reply()[0] for w in held] == [220] * PER_CLIENT
        greedy = Wire(site.smtp_port, "127.0.0.4")
        try:
            code, line = greedy.reply()
            assert (code, b"from your host" in line) == (421, True)
            assert greedy.reply()[0] == 0
        finally:
            greedy.close()
        other = Wire(site.smtp_port, "127.0.0.5")
        try:
            assert other.reply()[0] == 220
        finally:
            other.close()
    finally:
        for w in held:
            w.close()
    wait_until_serving(site)


def test_a_busy_session_ends_at_its_cap(site: Site) -> None:
    """NOOP every few tenths of a second keeps a session alive only up to max_session_seconds."""
    started = time.monotonic()
    with wire(site) as w:
        assert w.command("EHLO noop.example") == 250
        code = 250
        for _ in range(int(READ_TIMEOUT / 0.3)):  # bounded: the cap ends it well before
            code = w.command("NOOP")
            if code != 250:
                break
            time.sleep(0.3)
        elapsed = time.monotonic() - started
    assert code in {421, 0}
    assert SESSION_SECONDS * 0.8 < elapsed < READ_TIMEOUT
    wait_until_serving(site)


def test_each_command_is_limited_per_session(site: Site) -> None:
    """The command after max_commands of one kind is answered 421 and the session ends."""
    with wire(site) as w:
        assert w.command("EHLO chatty.example") == 250
        codes = [w.command("NOOP") for _ in range(MAX_COMMANDS + 1)]
    assert codes[:MAX_COMMANDS] == [250] * MAX_COMMANDS
    assert codes[MAX_COMMANDS] == 421
    wait_until_serving(site)


def test_a_slow_but_steady_sender_is_not_cut_off(site: Site) -> None:
    """DATA sent in pieces, each within the idle timeout, for longer than it: accepted."""
    with wire(site) as w:
        assert w.command("EHLO slow.example") == 250
        assert w.command("MAIL FROM:<alice@customer.example>") == 250
        assert w.command(f"RCPT TO:<{SUPPORT}>") == 250
        assert w.command("DATA") == 354
        w.send(b"From: alice@customer.example\r\nTo: support@example.com\r\n")
        w.send(b"Subject: slow link\r\n\r\n")
        pieces = int(IDLE_SECONDS * 2.5 / (IDLE_SECONDS * 0.4))
        for n in range(pieces):
            time.sleep(IDLE_SECONDS * 0.4)
            w.send(f"line {n} of a message on a slow link\r\n".encode())
        w.send(b".\r\n")
        assert w.reply()[0] == 250


def test_pipelined_garbage_gets_errors_not_a_crash(site: Site) -> None:
    """Garbage pipelined in one write is answered line by line with 5xx codes."""
    with wire(site) as w:
        w.send(
            b"EHLO x\r\nGARBAGE\r\n\x00\xff\xfe\r\nMAIL\r\nRCPT TO\r\nDATA\r\n"
            + b"A" * 5000
            + b"\r\n"
        )
        codes = [w.reply()[0] for _ in range(7)]
    assert codes[0] == 250
    assert all(500 <= c < 600 for c in codes[1:]), codes
    assert_still_serving(site)


def test_commands_before_helo_are_refused_with_503(site: Site) -> None:
    """MAIL before HELO, RCPT before MAIL and DATA before RCPT get 503 (bad sequence)."""
    with wire(site) as w:
        assert w.command("MAIL FROM:<alice@customer.example>") == 503
        assert w.command("RCPT TO:<support@example.com>") == 503
        assert w.command("EHLO client.example") == 250
        assert w.command("RCPT TO:<support@example.com>") == 503
        assert w.command("MAIL FROM:<alice@customer.example>") == 250
        assert w.command("DATA") == 503
        assert w.command("QUIT") == 221
    assert_still_serving(site)


def test_non_ascii_envelope_needs_smtputf8(site: Site) -> None:
    """A UTF-8 address without the SMTPUTF8 parameter gets 553 5.6.7; with it, 250."""
    with wire(site) as w:
        assert w.command("EHLO client.example") == 250
        assert w.command("MAIL FROM:<jörg@kunde.example>".encode()) == 553
        assert w.command("MAIL FROM:<alice@customer.example>") == 250
        assert w.command("RCPT TO:<süpport@example.com>".encode()) == 553
        assert w.command("RSET") == 250
        assert w.command("MAIL FROM:<jörg@kunde.example> SMTPUTF8".encode()) == 250
        assert w.command("RCPT TO:<support@example.com>") == 250
        assert w.command("DATA") == 354
        w.send("From: jörg@kunde.example\r\nSubject: Grüße\r\n\r\nHallo.\r\n.\r\n".encode())
        assert w.reply()[0] == 250
    assert_still_serving(site)
