"""SLA clock queries: start, end and find clocks, and mirror their deadlines onto the case."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import insert, select

from storage.cases import OPEN_STATUSES, running_clocks
from storage.deferred import hold_or_run
from storage.models import Case, SlaClock
from storage.upserts import table_of

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime
    from typing import Unpack

    from sqlalchemy.orm import Session
    from sqlalchemy.sql import Select

RUNNING = "running"
ClockRow = tuple[SlaClock, Case]
_INSERT_CLOCK = insert(table_of(SlaClock))


class ClockTimes(TypedDict):
    """When a clock started, when it is due, and when to remind (None: no reminder)."""

    started_at: datetime
    due_at: datetime
    remind_at: datetime | None


def start_clock(session: Session, case: Case, kind: str, **times: Unpack[ClockTimes]) -> SlaClock:
    """Add a running clock of ``kind`` to ``case``, flushed (it has an id)."""
    clock = new_clock(session, case, kind, **times)
    session.flush()
    return clock


def new_clock(session: Session, case: Case, kind: str, **times: Unpack[ClockTimes]) -> SlaClock:
    """Add a running clock of ``kind`` to ``case``; it goes in with the next flush."""
    clock = SlaClock(case_id=case.id, kind=kind, state=RUNNING, **times)
    session.add(clock)
    return clock


def insert_clock(session: Session, case: Case, kind: str, **times: Unpack[ClockTimes]) -> None:
    """Add a running clock of ``kind`` to ``case`` at once, as a row only (no object).

    For a case just opened: nothing in its transaction reads the clock back as an object.
    """
    row = {"case_id": case.id, "kind": kind, "state": RUNNING, **times}
    hold_or_run(session, table_of(SlaClock), _INSERT_CLOCK, [row])


def end_clock(case: Case, running: list[SlaClock], kind: str, *, at: datetime, state: str) -> bool:
    """Set the running clock of ``kind`` to ``state`` (met or stopped); False if none ran.

    ``running`` is the case's running clocks (:func:`storage.cases.running_clocks` and
    those started since); the ended clock leaves it.
    """
    ended = [c for c in running if c.kind == kind]
    for clock in ended:
        clock.state = state
        clock.ended_at = at
        running.remove(clock)
    if ended and kind == "first" and state == "met" and case.first_responded_at is None:
        case.first_responded_at = at
    return bool(ended)


def sync_case(session: Session, case: Case) -> None:
    """Mirror the running clocks' due times onto the case's columns (what lists show)."""
    session.flush()
    mirror(case, {c.kind: c.due_at for c in running_clocks(session, case.id)})


def mirror(case: Case, due: Mapping[str, datetime]) -> None:
    """Put the due times of the running clocks (by kind) on the case's columns.

    ``first_response_due`` keeps its last value once the first clock ends, so a case
    shows what was promised; ``next_update_due`` is empty while no update is owed.
    """
    if "first" in due:
        case.first_response_due = due["first"]
    case.next_update_due = due.get("update")


def due_for_reminder(session: Session, now: datetime, limit: int) -> list[ClockRow]:
    """Running clocks whose reminder time has come and that were not reminded yet.

    Reads the (state, remind_at) index, so a pass costs what comes due, not what is open.
    """
    return _due(session, SlaClock.remind_at, SlaClock.reminded_at, now, limit)


def due_for_escalation(session: Session, now: datetime, limit: int) -> list[ClockRow]:
    """Running clocks past due that were not escalated yet (reads the (state, due_at) index)."""
    return _due(session, SlaClock.due_at, SlaClock.breached_at, now, limit)


def _due(session: Session, when: Any, done: Any, now: datetime, limit: int) -> list[ClockRow]:
    """Running clocks whose ``when`` has come and whose ``done`` mark is not set, oldest first."""
    stmt = (
        _with_case()
        .where(SlaClock.state == RUNNING, when <= now, done.is_(None))
        .order_by(when, SlaClock.id)
        .limit(limit)
    )
    return _claimed(session, stmt)


def running_on_open_cases(session: Session, limit: int) -> list[ClockRow]:
    """Running clocks of open or pending cases, soonest due (so breached) first."""
    stmt = (
        _with_case()
        .where(SlaClock.state == RUNNING, Case.status.in_(OPEN_STATUSES))
        .order_by(SlaClock.due_at, SlaClock.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in session.execute(stmt)]


def mark_reminded(clock: SlaClock, at: datetime) -> None:
    """Record that the reminder of ``clock`` was queued."""
    clock.reminded_at = at


def defer_reminder(clock: SlaClock, until: datetime | None) -> None:
    """Move the reminder of ``clock`` to ``until``; None drops it (the escalation supersedes it)."""
    clock.remind_at = until


def mark_breached(clock: SlaClock, at: datetime) -> None:
    """Record that the escalation of ``clock`` was queued."""
    clock.breached_at = at


def _with_case() -> Select[SlaClock, Case]:
    return select(SlaClock, Case).join(Case, Case.id == SlaClock.case_id)


def _claimed(session: Session, stmt: Select[SlaClock, Case]) -> list[ClockRow]:
    # PostgreSQL: concurrent schedulers take disjoint clocks; SQLite has one writer anyway.
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=SlaClock)
    return [(row[0], row[1]) for row in session.execute(stmt)]
