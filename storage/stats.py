"""Read-only counts for monitoring: queue depths, open cases, overdue clocks, mailbox age."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from storage import inbound, outbox
from storage.models import Case, Inbound, MailboxState, SlaClock
from storage.statuses import InboundStatus

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Snapshot:
    """The database's state at one moment, as gauges need it."""

    inbound: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    cases: dict[tuple[str, str, str], int] = field(default_factory=dict)  # status, plan, priority
    overdue_clocks: int = 0
    oldest_pending_age: float = 0.0  # seconds the oldest unprocessed message has waited
    mailbox_age: dict[str, float] = field(default_factory=dict)  # seconds since state written


def snapshot(session: Session, now: datetime) -> Snapshot:
    """Count what monitoring shows; a handful of grouped queries on indexed columns."""
    return Snapshot(
        inbound=inbound.status_counts(session),
        outbox=outbox.counts(session),
        cases=_cases(session),
        overdue_clocks=_overdue(session, now),
        oldest_pending_age=_oldest_pending_age(session, now),
        mailbox_age={
            name: max((now - at).total_seconds(), 0.0)
            for name, at in session.execute(select(MailboxState.name, MailboxState.updated_at))
        },
    )


def _cases(session: Session) -> dict[tuple[str, str, str], int]:
    stmt = select(Case.status, Case.plan, Case.priority, func.count()).group_by(
        Case.status, Case.plan, Case.priority
    )
    return {(row[0], row[1], row[2]): int(row[3]) for row in session.execute(stmt)}


def _overdue(session: Session, now: datetime) -> int:
    stmt = select(func.count()).where(SlaClock.state == "running", SlaClock.due_at < now)
    return int(session.scalar(stmt) or 0)


def _oldest_pending_age(session: Session, now: datetime) -> float:
    stmt = select(func.min(Inbound.received_at)).where(Inbound.status == InboundStatus.RECEIVED)
    oldest = session.scalar(stmt)
    return 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)
