"""When SLA targets fall due, when to remind, and how much time is left."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sla.business_hours import to_utc
from sla.policy import Clock

if TYPE_CHECKING:
    from sla.business_hours import BusinessCalendar
    from sla.policy import Plan, Priority


def due_at(
    start: datetime, target: timedelta, clock: Clock, calendar: BusinessCalendar
) -> datetime:
    """Return the instant `target` of `clock` time after `start`, in UTC.

    A calendar clock counts real elapsed time, so 24 hours across a DST change
    is 24 real hours; a business clock counts only the calendar's open hours.

    Raises:
        ValueError: `start` is naive or `target` is negative.
    """
    if target < timedelta(0):
        raise ValueError(f"target must not be negative (got {target})")
    if clock is Clock.CALENDAR:
        return to_utc(start) + target
    return calendar.add(start, target)


def first_response_due(
    opened_at: datetime, plan: Plan, priority: Priority, calendar: BusinessCalendar
) -> datetime:
    """Return when the first agent response to a case opened at `opened_at` is due."""
    return due_at(opened_at, plan.target("first", priority), plan.clock, calendar)


def next_update_due(
    replied_at: datetime, plan: Plan, priority: Priority, calendar: BusinessCalendar
) -> datetime:
    """Return when the next agent update is due after an agent replied at `replied_at`."""
    return due_at(replied_at, plan.target("update", priority), plan.clock, calendar)


def reminder_due(
    start: datetime, due: datetime, share: float, clock: Clock, calendar: BusinessCalendar
) -> datetime:
    """Return the instant when `share` of the time from `start` to `due` has elapsed.

    Time is measured on `clock`: with a business clock, 0.75 of a 4-hour target
    is 3 business hours after `start`, however many nights lie in between.

    Raises:
        ValueError: a datetime is naive, `due` is before `start`, or `share` is
            outside 0..1.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be between 0 and 1 (got {share})")
    start, due = to_utc(start), to_utc(due)
    if due < start:
        raise ValueError(f"due {due.isoformat()} is before start {start.isoformat()}")
    if clock is Clock.CALENDAR:
        return start + (due - start) * share
    return calendar.add(start, calendar.elapsed(start, due) * share)


def remaining(now: datetime, due: datetime, clock: Clock, calendar: BusinessCalendar) -> timedelta:
    """Return the `clock` time left from `now` until `due`, negative once overdue.

    For a business clock this is business time, both before and after `due`: a
    case that fell due on Friday evening is still zero business hours overdue on
    Monday at opening, since no agent could have answered in between.

    Raises:
        ValueError: a datetime is naive.
    """
    if clock is Clock.CALENDAR:
        return to_utc(due) - to_utc(now)
    return calendar.elapsed(now, due)
