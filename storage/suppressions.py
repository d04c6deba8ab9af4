"""Who never gets automatic mail (machines, bounced addresses), and recent automatic mail."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import func, select

from storage.models import Outbox, Suppression
from storage.statuses import OutboxStatus
from storage.upserts import insert_if_absent

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

    from sqlalchemy.orm import Session

# The most keys bound in one IN list: well below every database's parameter limit
# (SQLite before 3.32 allowed 999), so a large batch costs a few queries, not an error.
IN_CHUNK = 500

_Key = TypeVar("_Key", str, int)

# Local parts of addresses that are machines, never people (RFC 2142 and common practice).
SYSTEM_LOCALS = (
    "mailer-daemon",
    "postmaster",
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "bounce",
    "bounces",
)


def is_system_address(address: str) -> bool:
    """Whether ``address`` belongs to a machine (mailer-daemon, postmaster, noreply...)."""
    local = address.lower().partition("@")[0]
    return any(local == s or local.startswith((s + "-", s + "+", s + ".")) for s in SYSTEM_LOCALS)


def suppress(session: Session, address: str, reason: str, now: datetime, until: datetime) -> None:
    """No automatic mail to ``address`` until ``until`` (extends an earlier suppression)."""
    key = address.lower()
    values = {"address": key, "reason": reason[:1000], "created_at": now, "until": until}
    if insert_if_absent(session, Suppression, values):
        return
    row = session.get_one(Suppression, key)
    row.reason, row.until = reason[:1000], max(row.until, until)


def suppressed(session: Session, addresses: Iterable[str], now: datetime) -> dict[str, str]:
    """The addresses among ``addresses`` suppressed at ``now``, lower-cased, with the reason.

    One query for up to ``IN_CHUNK`` distinct addresses (a whole claimed batch).
    """
    found: dict[str, str] = {}
    for chunk in _chunks({a.lower() for a in addresses}):
        stmt = select(Suppression.address, Suppression.reason).where(
            Suppression.address.in_(chunk), Suppression.until > now
        )
        found.update((address, reason) for address, reason in session.execute(stmt))
    return found


def sent_to_counts(
    session: Session, addresses: Iterable[str], kinds: Iterable[str], since: datetime
) -> dict[str, int]:
    """How many rows of ``kinds`` went to each of ``addresses`` since ``since``.

    Counted by first recipient (``Outbox.rcpt_key``), keyed by the lower-cased address;
    an address with none is missing. One GROUP BY query for up to ``IN_CHUNK`` addresses.
    """
    kind_list = sorted(kinds)
    counts: dict[str, int] = {}
    for chunk in _chunks({a.lower() for a in addresses}):
        stmt = (
            select(Outbox.rcpt_key, func.count())
            .where(Outbox.rcpt_key.in_(chunk), Outbox.sent_at >= since, Outbox.kind.in_(kind_list))
            .group_by(Outbox.rcpt_key)
        )
        counts.update((key, int(n)) for key, n in session.execute(stmt) if key is not None)
    return counts


def sent_for_cases_since(
    session: Session, case_ids: Iterable[int], since: datetime
) -> dict[int, int]:
    """How many rows about each of ``case_ids`` were sent since ``since``.

    A case with none is missing. One GROUP BY query for up to ``IN_CHUNK`` cases.
    """
    counts: dict[int, int] = {}
    for chunk in _chunks(set(case_ids)):
        stmt = (
            select(Outbox.case_id, func.count())
            .where(
                Outbox.case_id.in_(chunk),
                Outbox.status == OutboxStatus.SENT,
                Outbox.sent_at >= since,
            )
            .group_by(Outbox.case_id)
        )
        counts.update(
            (case_id, int(n)) for case_id, n in session.execute(stmt) if case_id is not None
        )
    return counts


def _chunks(keys: set[_Key]) -> Iterator[list[_Key]]:
    """``keys`` in sorted lists of at most ``IN_CHUNK``, for IN lists of bounded size."""
    ordered = sorted(keys)
    for start in range(0, len(ordered), IN_CHUNK):
        yield ordered[start : start + IN_CHUNK]
