"""Ordering an imported history: when was a message written."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from ingest.history.written_at import written_at

FALLBACK = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_date_header_wins() -> None:
    """A valid Date header is the time written, converted to UTC."""
    raw = (
        b"Date: Tue, 03 Mar 2026 10:00:00 +0100\r\n"
        b"Received: x; Wed, 04 Mar 2026 10:00:00 +0000\r\n\r\nbody"
    )
    assert written_at(raw, FALLBACK) == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def test_first_hop_received_when_date_is_missing_or_broken() -> None:
    """Without a usable Date, the earliest hop (the last Received header) gives the time."""
    raw = (
        b"Date: not a date\r\n"
        b"Received: from b by c; Wed, 04 Mar 2026 10:05:00 +0000\r\n"
        b"Received: from a by b;\r\n Wed, 04 Mar 2026 10:00:00 +0000\r\n\r\nbody"
    )
    assert written_at(raw, FALLBACK) == datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def test_implausible_dates_fall_back() -> None:
    """A date from 1970 or from far in the future is a broken clock: the fallback is used."""
    assert written_at(b"Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n\r\nx", FALLBACK) == FALLBACK
    assert written_at(b"Date: Fri, 01 Jan 2100 00:00:00 +0000\r\n\r\nx", FALLBACK) == FALLBACK


def test_naive_date_is_utc() -> None:
    """A Date with -0000 (unknown zone) is read as UTC."""
    raw = b"Date: Tue, 03 Mar 2026 10:00:00 -0000\r\n\r\nx"
    assert written_at(raw, FALLBACK) == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


@given(st.binary(max_size=2000))
def test_never_raises_and_is_aware(raw: bytes) -> None:
    """Any bytes give an aware UTC time, never an exception."""
    at = written_at(raw, FALLBACK)
    assert at.tzinfo is not None
    assert at.utcoffset() is not None
    assert at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
