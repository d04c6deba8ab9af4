"""Fuzzing parse, classify and priority with structured hostile MIME, and the stage on SQLite."""

from __future__ import annotations

import io
import os
import tempfile
import time
import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ingest.analysis.core import Analysis, AnalysisSettings, analyse
from mail2case import app
from mail2case.config.settings import config_from_mapping
from storage import inbound
from storage.models import Inbound
from storage.statuses import SETTLED

# Long generated headers make Hypothesis warn about the size of an example's repr.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CONFIG = config_from_mapping({"support": {"address": "support@example.com"}})
ANALYSIS: AnalysisSettings = app.process_settings(CONFIG, app.team_calendar(CONFIG, NOW)).analysis
# Generous: one example must never take longer than this (the stage's default bound is 30 s).
EXAMPLE_SECONDS = 20.0
FUZZ = settings(
    # MAIL2CASE_FUZZ_EXAMPLES=5000 for a long run; the default keeps CI quick.
    max_examples=int(os.environ.get("MAIL2CASE_FUZZ_EXAMPLES", "250")),
    deadline=None,  # timed below instead: a replay that is faster must not read as flaky
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CHARSETS = st.sampled_from(
    [
        "utf-8", "us-ascii", "iso-8859-1", "windows-1252", "koi8-r", "shift_jis", "iso-2022-jp",
        "utf-7", "utf-16", "utf-32", "gb2312", "x-unknown", "bogus charset", "zlib", "base64",
        "", '"utf-8"', "utf-8\x00", "unicode-1-1-utf-7", "x-mac-roman",
    ]
)  # fmt: skip
TEXTS = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["Ärger mit dem Server", "サーバーが落ちた", "Сервер упал", "\u202eexe.pdf"]),
)
CTYPES = st.sampled_from(
    [
        "text/plain", "text/html", "application/octet-stream", "image/png", "text/calendar",
        "message/delivery-status", "text/enriched", "application/ms-tnef", "bogus", "",
    ]
)  # fmt: skip
HEADER_NAMES = st.sampled_from(
    ["Subject", "From", "To", "Cc", "Reply-To", "Message-ID", "In-Reply-To", "References",
     "Date", "Auto-Submitted", "X-Priority", "Return-Path", "Content-Disposition", "X-Junk"]
)  # fmt: skip


@st.composite
def header_values(draw: st.DrawFn) -> bytes:
    """A header value: plain, 8-bit, encoded words, NULs, huge, or abusively folded."""
    text = draw(TEXTS).encode("utf-8", "surrogatepass")
    kind = draw(st.sampled_from(["plain", "long", "folded", "nul", "word", "bytes"]))
    if kind == "long":
        return b"x" * draw(st.integers(998, 20_000))
    if kind == "folded":  # folding abuse: blank and whitespace-only continuation lines
        return b"\r\n \r\n\t\r\n ".join([text, *[b"a"] * draw(st.integers(1, 300))])
    if kind == "nul":
        return text + b"\x00" + text
    if kind == "word":
        return b"=?" + draw(CHARSETS).encode("utf-8") + b"?B?" + b"////==?= =?x?q?=ZZ?="
    if kind == "bytes":
        return draw(st.binary(max_size=200)).replace(b"\n", b" ").replace(b"\r", b" ")
    return text.replace(b"\n", b" ").replace(b"\r", b" ")


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A leaf body and its Content-Transfer-Encoding line: good or bad base64 and QP, 8bit."""
    data = draw(st.binary(max_size=400) | TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass")))
    if draw(st.booleans()):
        data += b"y" * draw(st.integers(998, 5000))  # a line longer than RFC 5322 allows
    cte = draw(st.sampled_from(["base64", "bad-base64", "qp", "bad-qp", "8bit", "none", "x-uue"]))
    if cte in {"base64", "bad-base64"}:
        import base64  # noqa: PLC0415 - local to the one branch that needs it

        data = base64.encodebytes(data)
        if cte == "bad-base64":
            data = data[: max(1, len(data) - 3)] + b"!!\x00=\r\n=="
        return data, b"Content-Transfer-Encoding: base64\r\n"
    if cte in {"qp", "bad-qp"}:
        import quopri  # noqa: PLC0415 - local to the one branch that needs it

        data = quopri.encodestring(data) + (b"=ZZ=\r\n=4" if cte == "bad-qp" else b"")
        return data, b"Content-Transfer-Encoding: quoted-printable\r\n"
    return data, b"" if cte == "none" else f"Content-Transfer-Encoding: {cte}\r\n".encode()


@st.composite
def entities(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A MIME entity: a leaf, a multipart (maybe with lying boundaries) or a message/rfc822."""
    headers = b"".join(
        draw(HEADER_NAMES).encode() + b": " + draw(header_values()) + b"\r\n"
        for _ in range(draw(st.integers(0, 4)))
    )
    shape = draw(
        st.sampled_from(["leaf", "leaf", "multipart", "rfc822"]) if depth < 4 else st.just("leaf")
    )
    if shape == "multipart":
        return headers + draw(multiparts(depth))
    if shape == "rfc822":
        inner = draw(entities(depth + 1))
        return headers + b"Content-Type: message/rfc822\r\n\r\n" + inner
    body, cte = draw(bodies())
    ctype = draw(CTYPES).encode()
    charset = draw(CHARSETS).encode("utf-8")
    return (
        headers
        + b"Content-Type: "
        + ctype
        + b"; charset="
        + charset
        + b"\r\n"
        + cte
        + b"\r\n"
        + body
    )


@st.composite
def multiparts(draw: st.DrawFn, depth: int) -> bytes:
    """A multipart whose boundary may be wrong, missing, reused inside or never closed."""
    subtype = draw(st.sampled_from(["mixed", "alternative", "related", "report", "digest"]))
    declared = draw(st.sampled_from(["B", "", "a" * 80, "B B", '"quoted"']))
    used = draw(st.sampled_from([declared, "B", "other"]))  # a lying boundary parameter
    parts = draw(st.lists(entities(depth + 1), max_size=4))
    body = b"".join(b"--" + used.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    if draw(st.booleans()):
        body += b"--" + used.encode() + b"--\r\n"
    return f"Content-Type: multipart/{subtype}; boundary={declared}\r\n\r\n".encode() + body


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A whole message: a From line (sometimes) in front of a generated entity."""
    prefix = draw(st.sampled_from([b"From: a@customer.example\r\n", b"", b"\xef\xbb\xbf\r\n"]))
    return prefix + draw(entities())


def analyse_timed(raw: bytes) -> Analysis:
    """Analyse as the stage does and check the per-example time bound."""
    started = time.monotonic()
    result = analyse(raw, ANALYSIS, null_sender=False)
    assert time.monotonic() - started < EXAMPLE_SECONDS
    return result


def analyse_traced(raw: bytes) -> tuple[Analysis, int]:
    """``analyse_timed`` with the peak of Python memory it allocated, in bytes."""
    tracemalloc.start()
    try:
        result = analyse_timed(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def check(result: Analysis) -> None:
    """A result is either a parsed, classified mail or a parse error with a reason."""
    if result.mail is None:
        assert result.parse_error
        return
    assert result.verdict is not None
    assert len(result.mail.content_key) == 64


@FUZZ
@given(messages())
def test_generated_hostile_mime_never_raises(raw: bytes) -> None:
    """Structured hostile MIME gives a verdict or a parse error, never another exception."""
    check(analyse_timed(raw))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(500, 3000), st.booleans())
def test_thousands_of_parts_are_bounded(count: int, nested: bool) -> None:
    """A part bomb is refused or parsed within the time and a modest memory bound."""
    part = b"--P\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    if nested:  # each part a multipart of its own
        part = b"--P\r\nContent-Type: multipart/mixed; boundary=Q\r\n\r\n--Q\r\n\r\ny\r\n--Q--\r\n"
    raw = (
        b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n"
        + part * count
        + b"--P--\r\n"
    )
    result, peak = analyse_traced(raw)
    check(result)
    assert peak < 256 * 1024 * 1024


@settings(max_examples=10, deadline=None)
@given(st.integers(21, 120))
def test_deeply_nested_rfc822_is_refused_with_a_reason(depth: int) -> None:
    """Forwarded-inside-forwarded past the depth limit is a parse error, not a recursion crash."""
    raw = b"Subject: innermost\r\n\r\nbody\r\n"
    for _ in range(depth):
        raw = b"From: a@b.example\r\nContent-Type: message/rfc822\r\n\r\n" + raw
    result = analyse_timed(raw)
    check(result)
    assert result.mail is None


def zip_bomb() -> bytes:
    """A small zip that inflates to 200 MB of zeros (never to be opened)."""
    out = io.BytesIO()
    chunk = bytes(1024 * 1024)
    with (
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("zeros.bin", "w", force_zip64=True) as member,
    ):
        for _ in range(200):
            member.write(chunk)
    return out.getvalue()


def test_zip_bomb_attachment_is_stored_as_bytes() -> None:
    """A zip bomb is an attachment like any other: its bytes are kept, it is never unpacked."""
    import base64  # noqa: PLC0415 - only this test encodes by hand

    bomb = zip_bomb()
    raw = (
        b"From: a@customer.example\r\nTo: support@example.com\r\nSubject: logs\r\n"
        b"Content-Type: multipart/mixed; boundary=Z\r\n\r\n--Z\r\n"
        b"Content-Type: text/plain\r\n\r\nAttached.\r\n--Z\r\n"
        b"Content-Type: application/zip; name=logs.zip\r\n"
        b"Content-Disposition: attachment; filename=logs.zip\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(bomb) + b"--Z--\r\n"
    )
    result, peak = analyse_traced(raw)
    assert result.mail is not None
    assert [a.data for a in result.mail.attachments] == [bomb]
    assert peak < 50 * len(raw) + 32 * 1024 * 1024  # nowhere near the 200 MB it inflates to


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=6))
def test_stage_settles_every_generated_message_and_keeps_it_raw(raws: list[bytes]) -> None:
    """Through the process stage on SQLite each generated message settles, raw bytes intact."""
    with tempfile.TemporaryDirectory() as root:
        config = config_from_mapping(
            {
                "database": {"url": f"sqlite:///{Path(root) / 'fuzz.db'}"},
                "support": {"address": "support@example.com"},
            }
        )
        engine, sessions = app.open_database(config)
        with sessions.begin() as s:
            for raw in raws:
                inbound.add_inbound(s, raw=raw, source="smtp", now=NOW, mail_from="a@b.example")
        processor = app.build_processor(config, sessions)
        for _ in range(3):
            if processor.run_once(NOW) == 0:
                break
        with sessions() as s:
            stored = [(r.status, r.raw) for r in s.scalars(select(Inbound).order_by(Inbound.id))]
        engine.dispose()
    assert [raw for _, raw in stored] == raws
    assert all(status in SETTLED for status, _ in stored)


@pytest.mark.parametrize("cte", [b"8bit", b"base64", b"quoted-printable"])
def test_charset_name_with_nul_and_8bit_body_is_read(cte: bytes) -> None:
    """A charset name holding a NUL over an 8-bit body (found by fuzzing) still parses."""
    raw = (
        b"From: a@customer.example\r\nContent-Type: text/plain; charset=utf-8\x00\r\n"
        b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n\x80 text\r\n"
    )
    check(analyse_timed(raw))
