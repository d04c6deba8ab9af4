"""The bulk DATA reader over real sockets on 127.0.0.1, side by side with stock aiosmtpd.

One event loop in a thread serves two listeners with the same handler type: ours
(``start_server``, so ``_CountedSMTP``) and aiosmtpd's own ``SMTP``. Clients send the same
bytes to both; the replies and the bytes committed must be the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.mix import generate
from ingest.sources.smtp import SupportHandler, start_server
from ingest.sources.smtp_settings import SmtpSettings

if TYPE_CHECKING:
    from collections.abc import Iterator

SUPPORT = "support@example.com"
SIZE_LIMIT = 4000  # small, so that bodies around it are cheap to send
TIMEOUT = 10.0
LINE_LIMIT = SMTP.line_length_limit


@dataclass
class Listener:
    """One server: its port and what its handler committed."""

    port: int
    committed: list[bytes] = field(default_factory=list)

    def handler(self) -> SupportHandler:
        """Our handler, committing into ``committed`` (always as inbound id 1)."""

        async def commit(raw: bytes, mail_from: str, rcpts: list[str]) -> int:
            self.committed.append(raw)
            return 1

        return SupportHandler(frozenset({SUPPORT}), commit, lambda: None, max_recipients=5)


@dataclass
class Servers:
    """Ours and stock aiosmtpd in one loop thread, with a small and a real size limit."""

    ours: Listener
    stock: Listener
    ours_big: Listener
    stock_big: Listener


BIG_LIMIT = SmtpSettings().max_message_size


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """The listeners on ephemeral ports; the loop thread is stopped and joined at the end."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="smtp-test-loop", daemon=True)
    thread.start()
    found = Servers(Listener(0), Listener(0), Listener(0), Listener(0))
    started: list[asyncio.Server] = []

    async def stock_server(listener: Listener, limit: int) -> asyncio.Server:
        handler = listener.handler()
        return await loop.create_server(
            lambda: SMTP(
                handler,
                data_size_limit=limit,
                enable_SMTPUTF8=True,
                hostname="t",
                ident="mail2case ESMTP",
                loop=loop,
            ),
            host="127.0.0.1",
            port=0,
        )

    async def start() -> None:
        for listener, limit, kind in (
            (found.ours, SIZE_LIMIT, "ours"),
            (found.stock, SIZE_LIMIT, "stock"),
            (found.ours_big, BIG_LIMIT, "ours"),
            (found.stock_big, BIG_LIMIT, "stock"),
        ):
            if kind == "ours":
                config = SmtpSettings(port=0, max_message_size=limit, hostname="t")
                server = await start_server(config, listener.handler())
            else:
                server = await stock_server(listener, limit)
            started.append(server)
            listener.port = server.sockets[0].getsockname()[1]

    async def stop() -> None:
        for server in started:
            server.close()
            await server.wait_closed()

    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(TIMEOUT)
        yield found
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


class Wire:
    """A raw SMTP conversation: bytes out, complete replies in (bounded by timeouts)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = b""

    def reply(self) -> bytes:
        """The next reply's last line (b'' if the server closed)."""
        for _ in range(10_000):
            lines = self.buffer.split(b"\r\n")
            for index, line in enumerate(lines[:-1]):
                if line[3:4] == b" ":
                    self.buffer = b"\r\n".join(lines[index + 1 :])
                    return line
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.buffer += chunk
        raise AssertionError("no complete reply")

    def code(self) -> int:
        """The next reply's code."""
        line = self.reply()
        return int(line[:3]) if line else 0

    def ready_for_data(self) -> None:
        """Greeting, EHLO, MAIL, RCPT and DATA, each answered as it should be."""
        assert self.code() == 220
        self.sock.sendall(b"EHLO client.example\r\n")
        assert self.code() == 250
        self.sock.sendall(b"MAIL FROM:<a@example.com>\r\n")
        assert self.code() == 250
        self.sock.sendall(f"RCPT TO:<{SUPPORT}>\r\n".encode())
        assert self.code() == 250
        self.sock.sendall(b"DATA\r\n")
        assert self.code() == 354

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


@contextlib.contextmanager
def wire(port: int) -> Iterator[Wire]:
    """A raw connection, closed at the end."""
    w = Wire(port)
    try:
        yield w
    finally:
        w.close()


def send_with_smtplib(listener: Listener, body: bytes) -> tuple[int, bytes | None]:
    """Send by smtplib (it dot-stuffs, ends the last line): the code, the bytes committed."""
    before = len(listener.committed)
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=TIMEOUT) as client:
        client.ehlo("client.example")
        client.mail("a@example.com")
        client.rcpt(SUPPORT)
        code, _ = client.data(body)
    committed = listener.committed[before:]
    assert len(committed) <= 1
    return code, committed[0] if committed else None


LINE = st.one_of(
    st.sampled_from([b"", b".", b"..", b". ", b"x.", b".x", b"a\rb", b"a\nb"]),
    st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.integers(LINE_LIMIT - 5, LINE_LIMIT + 2).map(lambda n: b"=" * n),
    st.integers(1, 900).map(lambda n: b"." + b"Q" * n),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(LINE, max_size=12),
    trailing_crlf=st.booleans(),
    size=st.one_of(st.integers(0, SIZE_LIMIT + 20), st.integers(SIZE_LIMIT - 60, SIZE_LIMIT + 10)),
)
def test_smtp_sockets_same_bytes_and_codes_as_aiosmtpd(
    servers: Servers, lines: list[bytes], trailing_crlf: bool, size: int
) -> None:
    """The same body by smtplib to both servers: same code (250/500/552), same bytes committed.

    Filler lines bring the body to about ``size`` octets, around the size limit.
    """
    body = b"\r\n".join(lines)
    filler = (b"f" * 48 + b"\r\n") * max(0, (size - len(body)) // 50)
    body = filler + body + (b"\r\n" if trailing_crlf else b"")
    stock = send_with_smtplib(servers.stock, body)
    ours = send_with_smtplib(servers.ours, body)
    assert ours == stock
    assert ours[0] in {250, 500, 552}


def test_smtp_sockets_the_mix_arrives_byte_for_byte(servers: Servers) -> None:
    """Real mails (base64 attachments, charsets): the bytes aiosmtpd commits, as sent."""
    for message in generate(40, seed=3):
        ours = send_with_smtplib(servers.ours_big, message)
        assert ours == send_with_smtplib(servers.stock_big, message)
        expected = message if message.endswith(b"\r\n") else message + b"\r\n"
        assert ours == (250, expected)


def conversation(port: int, data: bytes, *, replies: int) -> list[bytes]:
    """Past DATA's 354, send ``data`` in one write; the next ``replies`` reply lines."""
    with wire(port) as w:
        w.ready_for_data()
        w.sock.sendall(data)
        return [w.reply() for _ in range(replies)]


def test_smtp_sockets_pipelined_commands_after_the_data_are_answered(servers: Servers) -> None:
    """Body, terminator, RSET and QUIT in one write: DATA, RSET and QUIT all answered."""
    data = b"Subject: pipelined\r\n\r\n..dot\r\nbody\r\n.\r\nRSET\r\nQUIT\r\n"
    before = len(servers.ours.committed)
    ours = conversation(servers.ours.port, data, replies=3)
    stock = conversation(servers.stock.port, data, replies=3)
    assert ours == stock
    assert [line[:3] for line in ours] == [b"250", b"250", b"221"]
    assert servers.ours.committed[before:] == [b"Subject: pipelined\r\n\r\n.dot\r\nbody\r\n"]


def test_smtp_sockets_whole_transaction_in_one_write(servers: Servers) -> None:
    """From MAIL to QUIT in one write: every reply, in order, as aiosmtpd gives them."""
    data = (
        b"EHLO c\r\nMAIL FROM:<a@example.com>\r\n"
        + f"RCPT TO:<{SUPPORT}>\r\n".encode()
        + b"DATA\r\nline\r\n.\r\nNOOP\r\nQUIT\r\n"
    )

    def talk(port: int) -> list[bytes]:
        with wire(port) as w:
            assert w.code() == 220
            w.sock.sendall(data)
            return [w.reply() for _ in range(7)]

    ours, stock = talk(servers.ours.port), talk(servers.stock.port)
    assert ours == stock
    assert [line[:3] for line in ours] == [b"250", b"250", b"250", b"354", b"250", b"250", b"221"]


def test_smtp_sockets_empty_message(servers: Servers) -> None:
    """Just the dot: 250 and an empty message, as aiosmtpd."""
    before = len(servers.ours.committed), len(servers.stock.committed)
    ours = conversation(servers.ours.port, b".\r\n", replies=1)
    stock = conversation(servers.stock.port, b".\r\n", replies=1)
    assert ours == stock
    assert ours[0].startswith(b"250")
    assert servers.ours.committed[before[0] :] == [b""]
    assert servers.stock.committed[before[1] :] == [b""]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"A" * (LINE_LIMIT + 500) + b"\r\n.\r\n", b"500"),
        (b"A" * (LINE_LIMIT - 1) + b"\r\n.\r\n", b"500"),  # 1002 octets with CRLF
        (b"A" * (LINE_LIMIT - 2) + b"\r\n.\r\n", b"250"),  # exactly the limit
        ((b"B" * 98 + b"\r\n") * (SIZE_LIMIT // 100 + 1) + b".\r\n", b"552"),
        ((b"B" * 98 + b"\r\n") * (SIZE_LIMIT // 100) + b".\r\n", b"250"),  # exactly the size
    ],
)
def test_smtp_sockets_limits_answered_as_aiosmtpd(
    servers: Servers, data: bytes, code: bytes
) -> None:
    """Line and size limits: the same reply, after the whole data, then the session goes on."""
    ours = conversation(servers.ours.port, data + b"NOOP\r\n", replies=2)
    stock = conversation(servers.stock.port, data + b"NOOP\r\n", replies=2)
    assert ours == stock
    assert ours[0][:3] == code
    assert ours[1][:3] == b"250"


def test_smtp_sockets_connection_dropped_mid_data(servers: Servers) -> None:
    """A client gone mid-DATA: nothing committed, the server keeps serving."""
    before = len(servers.ours.committed)
    with wire(servers.ours.port) as w:
        w.ready_for_data()
        w.sock.sendall(b"Subject: cut short\r\n\r\nhalf a li")
    with wire(servers.ours.port) as w:  # a reset rather than a clean close
        w.ready_for_data()
        w.sock.sendall(b"Subject: reset\r\n\r\n" + b"x" * 5000)
        w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    after = conversation(servers.ours.port, b"whole\r\n.\r\n", replies=1)
    assert after[0].startswith(b"250")
    assert servers.ours.committed[before:] == [b"whole\r\n"]
