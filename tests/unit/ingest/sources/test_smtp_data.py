"""The bulk DATA reader against aiosmtpd's own ``smtp_DATA``, on the same bytes.

Both implementations run on a real ``asyncio.StreamReader`` (aiosmtpd's limit) fed the
same stream in the same chunks, one chunk per loop turn; the replies, the bytes the DATA
hook sees, the state afterwards and what stays in the reader must be identical.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import itertools
import logging
import tomllib
from dataclasses import dataclass, field
from typing import Any, cast

import aiosmtpd
import aiosmtpd.smtp
import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from ingest.sources.smtp import _CountedSMTP, _Gate
from ingest.sources.smtp_data import DataScan, Outcome
from tests.support.services import REPO

LINE_LIMIT = SMTP.line_length_limit  # 1001: 998 octets + CRLF + a transparency dot
TRAILER = b"RSET\r\nQUIT\r\n"  # pipelined after the data: must stay in the reader


class Writer:
    """What ``push`` writes to."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        """Keep what was written."""
        self.sent.append(data)

    async def drain(self) -> None:
        """Nothing to wait for."""

    def close(self) -> None:
        """Note the close (aiosmtpd closes the writer when DATA is cut short)."""
        self.closed = True


@dataclass
class Handler:
    """A DATA hook that records what it was given."""

    seen: list[tuple[Any, Any]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Record the content and answer a status of our own."""
        del server, session
        self.seen.append((envelope.content, envelope.original_content))
        return "250 2.0.0 OK: queued"


@dataclass(frozen=True)
class Result:
    """Everything observable after one DATA command."""

    replies: tuple[bytes, ...]
    seen: tuple[tuple[Any, Any], ...]
    rest: bytes
    envelope_reset: bool
    writer_closed: bool


@dataclass
class Wired:
    """A protocol object ready for DATA (greeted, one recipient), on a fed reader."""

    proto: SMTP
    reader: asyncio.StreamReader
    writer: Writer
    handler: Handler


def make(kind: type[SMTP], **kwargs: Any) -> Wired:
    """``kind`` with a session and an envelope, reading from a StreamReader we feed."""
    loop = asyncio.get_running_loop()
    handler = Handler()
    extra: dict[str, Any] = (
        {"gate": _Gate(10, 10), "max_session_seconds": 60.0} if kind is _CountedSMTP else {}
    )
    proto = kind(handler, hostname="test", loop=loop, **extra, **kwargs)
    proto.session = proto._create_session()
    proto.session.host_name = "client.example"
    proto.envelope = proto._create_envelope()
    proto.envelope.mail_from = "a@example.com"
    proto.envelope.rcpt_tos.append("support@example.com")
    # The DATA loop runs while a transport is set; nothing is written through it.
    proto.transport = cast("asyncio.BaseTransport", object())
    reader = asyncio.StreamReader(limit=proto.line_length_limit)  # as aiosmtpd makes it
    writer = Writer()
    proto._reader = reader
    proto._writer = cast("asyncio.StreamWriter", writer)
    return Wired(proto, reader, writer, handler)


async def run_data(kind: type[SMTP], chunks: list[bytes], **kwargs: Any) -> Result:
    """Run ``kind``'s smtp_DATA on a reader fed ``chunks`` one loop turn apart."""
    wired = make(kind, **kwargs)
    task = asyncio.create_task(wired.proto.smtp_DATA(""))
    for chunk in chunks:
        wired.reader.feed_data(chunk)
        for _ in range(3):  # let the reader take the chunk before the next arrives
            await asyncio.sleep(0)
    wired.reader.feed_eof()
    await asyncio.wait_for(task, timeout=10)
    assert wired.proto.envelope is not None
    return Result(
        replies=tuple(wired.writer.sent),
        seen=tuple(wired.handler.seen),
        rest=await wired.reader.read(),
        envelope_reset=not wired.proto.envelope.rcpt_tos,
        writer_closed=wired.writer.closed,
    )


def both(chunks: list[bytes], **kwargs: Any) -> tuple[Result, Result]:
    """The results of aiosmtpd's DATA and ours for the same chunks."""

    async def go() -> tuple[Result, Result]:
        return await run_data(SMTP, chunks, **kwargs), await run_data(
            _CountedSMTP, chunks, **kwargs
        )

    return asyncio.run(go())


def cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    """``stream`` split at the given positions."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(stream)}), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def status(result: Result) -> bytes:
    """The last reply's code."""
    return result.replies[-1][:3]


# Lines built to hit the edges: dots, CR and LF alone, lines around the 1000-octet limit.
SPECIAL = st.sampled_from(
    [b"", b".", b"..", b"...", b". ", b" .", b"x.", b".x", b"\r", b"\n", b"\r.", b".\r", b"a\rb"]
)
NEAR_LIMIT = st.builds(
    lambda byte, size, dot: (b"." if dot else b"") + bytes([byte]) * size,
    st.sampled_from(b"A.=\r\n "),
    st.integers(LINE_LIMIT - 6, LINE_LIMIT + 3),
    st.booleans(),
)
# Medium lines fill the reader past its limit without a dot-CRLF: pieces then end anywhere.
MEDIUM = st.builds(
    lambda byte, size: bytes([byte]) * size, st.sampled_from(b"Q.\r"), st.integers(1, 600)
)
LINE = st.one_of(SPECIAL, st.binary(max_size=60), NEAR_LIMIT, MEDIUM)
LINES = st.lists(LINE, max_size=25)


def stream_of(lines: list[bytes], *, stuffed: bool) -> bytes:
    """The wire bytes of DATA: the lines, the end-of-data line, a pipelined command.

    ``stuffed``: lines starting with a dot get another, as a client must (RFC 5321 4.5.2);
    otherwise a lone-dot line among them ends the data early, the rest stays in the reader.
    """
    if stuffed:
        lines = [b"." + line if line.startswith(b".") else line for line in lines]
    body = b"".join(line + b"\r\n" for line in lines)
    return body + b".\r\n" + TRAILER


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    lines=LINES,
    stuffed=st.booleans(),
    data=st.data(),
)
@example(lines=[], stuffed=True, data=None).via("an empty message")
@example(lines=[b"."], stuffed=True, data=None).via("a lone dot, stuffed")
@example(lines=[b"a", b".", b"b"], stuffed=False, data=None).via("an early end of data")
def test_smtp_bulk_data_matches_aiosmtpd(lines: list[bytes], stuffed: bool, data: Any) -> None:
    """Replies, hooked bytes, state and the rest of the stream are aiosmtpd's."""
    stream = stream_of(lines, stuffed=stuffed)
    if data is None:
        cuts: list[int] = []
        size_limit: int | None = None
        decode = False
        utf8 = True
    else:
        cuts = data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=12), label="cuts")
        body_size = len(stream) - len(TRAILER)
        size_limit = data.draw(
            st.one_of(
                st.none(),
                st.just(0),
                st.integers(max(1, body_size - 12), body_size + 4),
                st.integers(1, body_size + 4),
            ),
            label="size_limit",
        )
        decode = data.draw(st.booleans(), label="decode_data")
        utf8 = data.draw(st.booleans(), label="enable_SMTPUTF8")
    stock, ours = both(
        cut(stream, cuts), data_size_limit=size_limit, decode_data=decode, enable_SMTPUTF8=utf8
    )
    event(f"reply {status(ours).decode()}, ended {'early' if ours.rest != TRAILER else 'last'}")
    assert ours == stock


def test_smtp_bulk_data_statuses_cover_all_outcomes() -> None:
    """The three outcomes, each the same as aiosmtpd's, including which limit wins."""
    long_line = b"A" * (LINE_LIMIT + 5)
    cases = {
        b"250": (b"hello\r\n.\r\n", None),
        b"552": (b"hello\r\nworld\r\n.\r\n", 8),
        b"500": (long_line + b"\r\n.\r\n", None),
    }
    for code, (stream, limit) in cases.items():
        stock, ours = both([stream + TRAILER], data_size_limit=limit)
        assert status(stock) == status(ours) == code
        assert ours == stock
    # A long line before the size is exceeded answers 500, after it 552, as aiosmtpd does.
    stock, ours = both([b"x\r\n" + long_line + b"\r\n.\r\n"], data_size_limit=2)
    assert status(ours) == status(stock) == b"552"
    stock, ours = both([long_line + b"\r\nmore\r\n.\r\n"], data_size_limit=LINE_LIMIT)
    assert status(ours) == status(stock) == b"500"


@pytest.mark.parametrize(
    "stream",
    [
        b".\r\n",
        b"a\r\n.\r\n",
        b"..\r\n.\r\n",
        b"a.\r\nb\r\n.\r\n",
        b"\r\n.\r\n",
        b".a\r\n..\r\n. \r\n.\r\n",
        b"a\r\r\n.\r\n",
        b"a\n.\r\n.\r\n",
    ],
)
def test_smtp_bulk_data_every_one_and_two_cuts(stream: bytes) -> None:
    """Chunk boundaries at every position and every pair of positions, terminator included."""
    full = stream + TRAILER
    positions = range(1, len(full))
    splits = [[p] for p in positions] + [
        list(pair) for pair in itertools.combinations(positions, 2)
    ]
    assert len(splits) < 1000
    for cuts in splits:
        stock, ours = both(cut(full, cuts), data_size_limit=len(stream) - 3 or None)
        assert ours == stock, cuts


def test_smtp_bulk_data_crlf_split_between_pieces() -> None:
    """Pieces ending between CR and LF, or inside a line that meets the size limit.

    Past the reader's limit without a dot-CRLF, the reader hands over all but the last
    two bytes it holds: a cut at ``p`` ends a piece at ``p - 2``, here between the CR and
    LF before the long line, and at points inside it.
    """
    short = b"".join(b"%02d" % i + b"q" * 56 + b"\r\n" for i in range(20))
    body = short + b"B" * 950 + b"\r\n"
    stream = body + b".\r\n" + TRAILER
    positions = [*range(len(short) - 8, len(short) + 8), *range(len(short) + 8, len(body), 7)]
    for limit, code in ((None, b"250"), (len(body), b"250"), (len(body) - 1, b"552")):
        for position in positions:
            stock, ours = both(cut(stream, [position]), data_size_limit=limit)
            assert status(ours) == code
            assert ours == stock, (limit, position)
    # A line past the reader's limit that starts before the size limit is reached: 500,
    # even when the piece holding it began inside the line before.
    stream = body + b"L" * (LINE_LIMIT + 99) + b"\r\n.\r\n" + TRAILER
    for position in positions:
        stock, ours = both(cut(stream, [position]), data_size_limit=len(body) + 5)
        assert status(ours) == b"500"
        assert ours == stock, position


def test_smtp_bulk_data_one_byte_chunks_long_lines() -> None:
    """A byte per chunk, through lines at, just over and far over the limits."""
    lines = [b"B" * n for n in (LINE_LIMIT - 3, LINE_LIMIT - 2, LINE_LIMIT - 1, 3 * LINE_LIMIT)]
    for line in lines:
        stream = b"start\r\n" + line + b"\r\n.end\r\n.\r\n" + TRAILER
        stock, ours = both([stream[i : i + 1] for i in range(len(stream))])
        assert ours == stock, len(line)


class LegacyHandler:
    """A handler with aiosmtpd's deprecated ``process_message`` and no DATA hook."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.seen: list[tuple[Any, ...]] = []

    def process_message(self, *args: Any) -> str | None:
        """Record the call; answer None (aiosmtpd's default reply) or a status."""
        self.seen.append(args)
        return self.answer


@pytest.mark.parametrize("answer", [None, "250 legacy"])
def test_smtp_bulk_data_legacy_process_message(answer: str | None) -> None:
    """No handle_DATA: process_message is called, with the deprecation warning, as aiosmtpd."""

    async def go(kind: type[SMTP]) -> tuple[list[bytes], list[tuple[Any, ...]]]:
        wired = make(kind)
        handler = LegacyHandler(answer)
        wired.proto.event_handler = handler
        wired.proto._handle_hooks.pop("DATA")
        wired.reader.feed_data(b"..legacy\r\n.\r\n")
        with pytest.warns(DeprecationWarning, match="process_message"):
            await asyncio.wait_for(wired.proto.smtp_DATA(""), timeout=10)
        return wired.writer.sent, handler.seen

    stock, ours = asyncio.run(go(SMTP)), asyncio.run(go(_CountedSMTP))
    assert ours == stock
    assert ours[0][-1] == (answer or "250 OK").encode() + b"\r\n"
    assert ours[1][0][3] == b".legacy\r\n"


def test_smtp_bulk_data_connection_lost_mid_data() -> None:
    """Cancelled mid-DATA (aiosmtpd cancels on connection loss): writer closed, cancel raised."""

    async def go(kind: type[SMTP]) -> tuple[bool, list[bytes], bool]:
        wired = make(kind)
        task = asyncio.create_task(wired.proto.smtp_DATA(""))
        wired.reader.feed_data(b"Subject: half\r\n\r\nthe first half of a bo")
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        return wired.writer.closed, wired.writer.sent, bool(wired.handler.seen)

    stock = asyncio.run(go(SMTP))
    ours = asyncio.run(go(_CountedSMTP))
    assert ours == stock
    assert ours[0]
    assert not ours[2]


def test_smtp_data_scan_content_refused_past_a_limit() -> None:
    """A scan that broke a limit has no content to give."""
    scan = DataScan(4, LINE_LIMIT, LINE_LIMIT)
    assert scan.feed(b"hello\r\n.\r\n")
    assert scan.outcome is Outcome.TOO_MUCH
    with pytest.raises(ValueError, match="TOO_MUCH"):
        scan.content()


def test_smtp_data_scan_keeps_nothing_past_a_limit() -> None:
    """Memory stays bounded as aiosmtpd's does: past a limit, pieces are dropped as read."""
    endless_line = DataScan(None, LINE_LIMIT, LINE_LIMIT)
    for _ in range(2000):  # 2 MB in one line
        assert not endless_line.feed(b"A" * (LINE_LIMIT + 1))
        assert sum(map(len, endless_line._parts)) <= LINE_LIMIT
    assert endless_line.feed(b"\r\n.\r\n")
    assert endless_line.outcome is Outcome.TOO_LONG

    too_much = DataScan(10_000, LINE_LIMIT, LINE_LIMIT)
    piece = (b"x" * 98 + b"\r\n") * 10
    for _ in range(2000):  # 2 MB against a 10 kB limit
        assert not too_much.feed(piece)
        assert sum(map(len, too_much._parts)) <= 10_000
    assert too_much.feed(b".\r\n")
    assert too_much.outcome is Outcome.TOO_MUCH


# What ingest.sources.smtp._CountedSMTP.smtp_DATA relies on (its docstring lists the same):
# each method's parameters after self, and whether it is a coroutine function.
AIOSMTPD_METHODS = {
    "check_helo_needed": (("helo",), True),
    "check_auth_needed": (("caller_method",), True),
    "push": (("status",), True),
    "_call_handler_hook": (("command", "args"), True),
    "_set_post_data_state": ((), False),
    "smtp_DATA": (("arg",), True),
    "connection_lost": (("error",), False),
    # The connection limits: the session starts there, bytes reset the idle timeout.
    "connection_made": (("transport",), False),
    "data_received": (("data",), False),
    "eof_received": ((), False),
    "_reset_timeout": (("duration",), False),
    # Where aiosmtpd sets self._reader and self._writer (checked below).
    "_cb_client_connected": (("reader", "writer"), False),
}
# The keywords start_server passes to SMTP.__init__.
AIOSMTPD_INIT_KEYWORDS = (
    "data_size_limit",
    "enable_SMTPUTF8",
    "hostname",
    "ident",
    "tls_context",
    "require_starttls",
    "timeout",
    "loop",
)
# Set by SMTP.__init__ (_reader and _writer only once a client connects).
AIOSMTPD_INSTANCE_ATTRS = (
    "transport",
    "envelope",
    "session",
    "event_handler",
    "data_size_limit",
    "line_length_limit",
    "enable_SMTPUTF8",
    "_decode_data",
    "_handle_hooks",
    "_smtp_methods",
)


def version_tuple(text: str) -> tuple[int, ...]:
    """A release number as comparable integers: "1.4.6" -> (1, 4, 6)."""
    return tuple(int(part) for part in text.split("."))


def test_smtp_aiosmtpd_version_is_the_pinned_range() -> None:
    """The installed aiosmtpd is one the override was written for: >=1.4.6,<1.5, as pinned."""
    installed = version_tuple(importlib.metadata.version("aiosmtpd"))
    assert (1, 4, 6) <= installed < (1, 5), installed
    assert aiosmtpd.__version__ == importlib.metadata.version("aiosmtpd")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "aiosmtpd>=1.4.6,<1.5" in pyproject["project"]["dependencies"]


@pytest.mark.parametrize("name", sorted(AIOSMTPD_METHODS))
def test_smtp_aiosmtpd_methods_keep_their_signatures(name: str) -> None:
    """Each aiosmtpd method the override calls or overrides has the parameters it passes."""
    params, is_coroutine = AIOSMTPD_METHODS[name]
    method = getattr(SMTP, name, None)
    assert callable(method), f"aiosmtpd.smtp.SMTP.{name} is gone"
    found = tuple(inspect.signature(method).parameters)
    assert found == ("self", *params), f"SMTP.{name}{found}"
    assert inspect.iscoroutinefunction(method) is is_coroutine, name


def test_smtp_aiosmtpd_constructor_and_names_still_there() -> None:
    """SMTP takes start_server's keywords; MISSING, syntax and the 1001 line limit remain."""
    init = inspect.signature(SMTP.__init__).parameters
    assert [k for k in AIOSMTPD_INIT_KEYWORDS if k not in init] == []
    assert tuple(inspect.signature(aiosmtpd.smtp.syntax).parameters)[:1] == ("text",)
    assert SMTP.line_length_limit == 1001
    assert aiosmtpd.smtp.MISSING is not None
    assert logging.getLogger("mail.log") is aiosmtpd.smtp.log
    for name in ("content", "original_content", "rcpt_tos", "mail_from"):
        assert hasattr(aiosmtpd.smtp.Envelope(), name), name
    loop = asyncio.new_event_loop()
    try:
        assert hasattr(aiosmtpd.smtp.Session(loop), "peer")
    finally:
        loop.close()


def test_smtp_aiosmtpd_internals_still_there() -> None:
    """Our smtp_DATA relies on aiosmtpd 1.4.x internals: fail loudly if they move."""
    # What ours replaces, as we read it: one readuntil per line under these names.
    source = inspect.getsource(SMTP.smtp_DATA)
    for fragment in (
        "self._reader.readuntil(b'\\r\\n')",
        "_DataState.TOO_LONG",
        "self.line_length_limit",
        "self._handle_hooks",
        "self._decode_data",
        "self._set_post_data_state()",
    ):
        assert fragment in source, fragment
    # The StreamReader aiosmtpd builds has the limit DataScan assumes; it becomes _reader.
    init = inspect.getsource(SMTP.__init__)
    assert "asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit)" in init
    connected = inspect.getsource(SMTP._cb_client_connected)
    assert "self._reader = reader" in connected
    assert "self._writer = writer" in connected

    async def instance_attrs() -> None:
        proto = _CountedSMTP(Handler(), gate=_Gate(1, 1), max_session_seconds=60.0, hostname="test")
        missing = [name for name in AIOSMTPD_INSTANCE_ATTRS if not hasattr(proto, name)]
        assert missing == []
        assert isinstance(proto._handle_hooks, dict)
        assert "DATA" in proto._handle_hooks
        assert proto._decode_data is False
        assert proto._smtp_methods["DATA"].__func__ is _CountedSMTP.smtp_DATA
        assert proto._smtp_methods["DATA"].__smtp_syntax__ == "DATA"

    asyncio.run(instance_attrs())
