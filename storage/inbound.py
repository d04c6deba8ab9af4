"""Queries on raw inbound mail: commit it, claim it for processing, settle it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import case, func, select, update

from storage.engine import is_sqlite
from storage.models import Inbound

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

RECEIVED = "received"
SETTLED = ("processed", "duplicate", "suppressed", "quarantined")


def add_inbound(
    session: Session,
    *,
    raw: bytes,
    source: str,
    now: datetime,
    mail_from: str = "",
    rcpt_to: Sequence[str] = (),
    source_ref: str | None = None,
) -> Inbound:
    """Add raw mail to the session; the caller commits before acknowledging it."""
    row = Inbound(
        received_at=now,
        source=source,
        source_ref=source_ref,
        mail_from=mail_from,
        rcpt_to=list(rcpt_to),
        raw=raw,
        size=len(raw),
        status=RECEIVED,
    )
    session.add(row)
    session.flush()
    return row


def find_by_source_ref(session: Session, source: str, source_ref: str) -> Inbound | None:
    """The row a source already stored under ``source_ref`` (an IMAP UID, say)."""
    return session.scalars(
        select(Inbound).where(Inbound.source == source, Inbound.source_ref == source_ref)
    ).first()


def pending_ids(session: Session, limit: int) -> list[int]:
    """Ids of raw mail not yet processed, oldest first."""
    stmt = select(Inbound.id).where(Inbound.status == RECEIVED).order_by(Inbound.id).limit(limit)
    return list(session.scalars(stmt))


def lock_pending(session: Session, inbound_id: int, *, status: str = RECEIVED) -> Inbound | None:
    """The row if it is still pending, locked for this transaction (skipped if another has it)."""
    stmt = select(Inbound).where(Inbound.id == inbound_id, Inbound.status == status)
    if not is_sqlite(session.get_bind()):  # type: ignore[arg-type]
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalars(stmt).first()


def settle(
    row: Inbound,
    *,
    status: str,
    now: datetime,
    reason: str | None = None,
    case_id: int | None = None,
) -> None:
    """Record the outcome of processing one raw message."""
    if status not in SETTLED:
        raise ValueError(f"unknown inbound status {status!r}")
    row.status = status
    row.reason = reason
    row.case_id = case_id
    row.processed_at = now
    row.attempts += 1


def requeue(session: Session, inbound_id: int) -> bool:
    """Put a quarantined or suppressed message back in the queue for reprocessing.

    Imported history goes back to ``held``: the import re-runs it, with nothing sent.
    """
    result = session.execute(
        update(Inbound)
        .where(Inbound.id == inbound_id, Inbound.status.in_(("quarantined", "suppressed")))
        .values(status=case((Inbound.source == "import", "held"), else_=RECEIVED), reason=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def quarantined(session: Session, limit: int = 1000) -> list[Inbound]:
    """Quarantined messages, newest first."""
    stmt = (
        select(Inbound)
        .where(Inbound.status == "quarantined")
        .order_by(Inbound.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def status_counts(session: Session) -> dict[str, int]:
    """How many raw messages are in each status."""
    rows = session.execute(select(Inbound.status, func.count()).group_by(Inbound.status))
    return {row[0]: row[1] for row in rows}
