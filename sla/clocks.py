"""SLA clock transitions: what a case event does to its first-response and update clocks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from sla.deadlines import due_at, reminder_due

if TYPE_CHECKING:
    from datetime import datetime

    from sla.business_hours import BusinessCalendar
    from sla.policy import Plan, Priority, TargetKind

EndState = Literal["met", "stopped"]


class Status(StrEnum):
    """Where a case stands; only `open` cases owe the customer an update."""

    OPEN = "open"
    PENDING = "pending"  # waiting on the customer: the update clock stops
    SOLVED = "solved"
    CLOSED = "closed"

    @property
    def is_finished(self) -> bool:
        """Whether the case is solved or closed (no clock runs)."""
        return self in {Status.SOLVED, Status.CLOSED}


@dataclass(frozen=True)
class RunningClock:
    """A clock that is still counting towards its target."""

    kind: TargetKind
    started_at: datetime
    due_at: datetime


@dataclass(frozen=True)
class CaseClocks:
    """What the transitions need to know about a case besides its terms."""

    status: Status
    has_first_response: bool
    running: tuple[RunningClock, ...] = ()

    def clock(self, kind: TargetKind) -> RunningClock | None:
        """The running clock of `kind`, if any."""
        return next((c for c in self.running if c.kind == kind), None)


@dataclass(frozen=True)
class ClockTerms:
    """The case's plan and priority, its calendar (in the customer's zone) and reminder share."""

    plan: Plan
    priority: Priority
    calendar: BusinessCalendar
    reminder_share: float

    def schedule(self, kind: TargetKind, start: datetime) -> tuple[datetime, datetime]:
        """Return (due_at, remind_at) of a `kind` clock started at `start`."""
        due = due_at(start, self.plan.target(kind, self.priority), self.plan.clock, self.calendar)
        remind = reminder_due(start, due, self.reminder_share, self.plan.clock, self.calendar)
        return due, remind


@dataclass(frozen=True)
class Scheduled:
    """A clock of `kind` with its start, due and reminder times (what the two below set)."""

    kind: TargetKind
    started_at: datetime
    due_at: datetime
    remind_at: datetime


@dataclass(frozen=True)
class Started(Scheduled):
    """Start a clock of `kind`."""


@dataclass(frozen=True)
class Ended:
    """End the running clock of `kind`: met by an agent's reply, or stopped."""

    kind: TargetKind
    at: datetime
    state: EndState


@dataclass(frozen=True)
class Rescheduled(Scheduled):
    """The running clock of `kind` keeps its start but gets a new due and reminder time."""


ClockChange = Started | Ended | Rescheduled


@dataclass(frozen=True)
class Decision:
    """The clock changes a transition calls for, and the case's new status if it changes."""

    changes: tuple[ClockChange, ...] = ()
    status: Status | None = None


def on_opened(terms: ClockTerms, opened_at: datetime) -> Decision:
    """A new case: the first-response clock starts at its opening."""
    return Decision((_start(terms, "first", opened_at),))


def on_agent_reply(terms: ClockTerms, case: CaseClocks, at: datetime) -> Decision:
    """A public agent reply meets the running clocks and owes the next update from `at`.

    A case waiting on the customer, or finished, gets no update clock: the agent's
    reply does not change who the case is waiting for.
    """
    ended = tuple(Ended(c.kind, at, "met") for c in case.running)
    if case.status is not Status.OPEN:
        return Decision(ended)
    return Decision((*ended, _start(terms, "update", at)))


def on_customer_reply(terms: ClockTerms, case: CaseClocks, at: datetime) -> Decision:
    """A customer's message: a pending or finished case reopens and its clock restarts at `at`."""
    if case.status is Status.OPEN:
        return Decision()
    return Decision(_resume(terms, case, at), Status.OPEN)


def on_status(terms: ClockTerms, case: CaseClocks, new_status: Status, at: datetime) -> Decision:
    """A status change by an agent or operator.

    Pending stops the update clock (the first-response clock keeps running: the
    customer has not been answered yet); solved and closed stop every clock; back to
    open, the clock that is owed restarts from `at`.
    """
    if new_status is case.status:
        return Decision()
    if new_status.is_finished:
        return Decision(_stop(case.running, at), new_status)
    if new_status is Status.PENDING:
        return Decision(_stop([c for c in case.running if c.kind == "update"], at), new_status)
    return Decision(_resume(terms, case, at), new_status)


def on_priority_change(terms: ClockTerms, case: CaseClocks, new_priority: Priority) -> Decision:
    """A recategorization: each running clock is due `new_priority`'s target after its start."""
    new_terms = dataclasses.replace(terms, priority=new_priority)
    changes: list[ClockChange] = []
    for clock in case.running:
        due, remind = new_terms.schedule(clock.kind, clock.started_at)
        if due != clock.due_at:
            changes.append(Rescheduled(clock.kind, clock.started_at, due, remind))
    return Decision(tuple(changes))


def _start(terms: ClockTerms, kind: TargetKind, at: datetime) -> Started:
    due, remind = terms.schedule(kind, at)
    return Started(kind, at, due, remind)


def _stop(clocks: list[RunningClock] | tuple[RunningClock, ...], at: datetime) -> tuple[Ended, ...]:
    return tuple(Ended(c.kind, at, "stopped") for c in clocks)


def _resume(terms: ClockTerms, case: CaseClocks, at: datetime) -> tuple[ClockChange, ...]:
    """Start the clock the case owes from `at`, unless it is running already."""
    kind: TargetKind = "update" if case.has_first_response else "first"
    if case.clock(kind) is not None:
        return ()
    return (_start(terms, kind, at),)


def describe_remaining(left: timedelta) -> str:
    """Return time left in words: "1 hour 10 minutes left", "overdue by 25 minutes".

    Whole minutes only, rounded towards zero, so "left" never overstates the time.
    """
    minutes = int(abs(left) // timedelta(minutes=1))
    if minutes == 0:
        return "due now"
    words = _hours_minutes(minutes)
    return f"{words} left" if left > timedelta(0) else f"overdue by {words}"


def _hours_minutes(minutes: int) -> str:
    hours, mins = divmod(minutes, 60)
    parts = [_count(hours, "hour")] if hours else []
    if mins or not hours:
        parts.append(_count(mins, "minute"))
    return " ".join(parts)


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"
