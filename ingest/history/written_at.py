"""When a message was written: its Date, else its first Received stamp, else a fallback."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime

# A Received header ends with "; <date-time>" (RFC 5321 4.4).
_RECEIVED_DATE = re.compile(r";\s*([^;]+)$", re.DOTALL)
# Dates before e-mail existed, or far in the future, are broken clocks, not history.
_EARLIEST = datetime(1980, 1, 1, tzinfo=UTC)


def written_at(raw: bytes, fallback: datetime, *, latest: datetime | None = None) -> datetime:
    """The aware-UTC time ``raw`` was written, for ordering an imported history.

    Args:
        raw: the message bytes (only the header block is read).
        fallback: used when neither Date nor Received gives a plausible time
            (the file's modification time, say).
        latest: times after this are implausible (default: the fallback's year + 1).
    """
    headers = BytesHeaderParser(policy=compat32).parsebytes(
        raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    )
    ceiling = latest or fallback.replace(year=fallback.year + 1)
    date = _plausible(_parse(headers.get("Date")), ceiling)
    if date is not None:
        return date
    received = headers.get_all("Received") or []
    # The last Received header is the first hop: the closest to when it was sent.
    for value in reversed(received):
        match = _RECEIVED_DATE.search(" ".join(str(value).split()))
        stamp = _plausible(_parse(match.group(1) if match else None), ceiling)
        if stamp is not None:
            return stamp
    return fallback.astimezone(UTC)


def _parse(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(str(value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _plausible(at: datetime | None, ceiling: datetime) -> datetime | None:
    if at is None or at < _EARLIEST or at > ceiling:
        return None
    return at
