"""Applies SLA clock decisions to a case in the caller's transaction, with audit events."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sla.clocks import (
    CaseClocks,
    ClockTerms,
    Decision,
    Ended,
    Rescheduled,
    RunningClock,
    Started,
    Status,
    on_agent_reply,
    on_customer_reply,
    on_opened,
    on_priority_change,
    on_status,
)
from sla.policy import Priority
from storage import cases, sla_clocks

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

    from sla.business_hours import BusinessCalendar, WorkingHours
    from sla.clocks import ClockChange, Scheduled
    from sla.policy import SlaPolicy, TargetKind
    from storage.models import Case, SlaClock


@dataclass(frozen=True)
class SlaContext:
    """The policy, the business calendar (any zone) and the reminder share."""

    policy: SlaPolicy
    calendar: BusinessCalendar
    reminder_share: float
    # A customer's own business hours, looked up by the case's customer address
    # (the composition root wires it to the customer directory); None: the default.
    hours_for: Callable[[str], WorkingHours | None] = field(default=lambda _address: None)

    def calendar_for(self, tz_name: str) -> BusinessCalendar:
        """The business calendar in a customer's time zone."""
        return dataclasses.replace(self.calendar, tz=ZoneInfo(tz_name))

    def terms(self, case: Case) -> ClockTerms:
        """The clock terms of ``case``: the plan it opened on and its current priority."""
        calendar = self.calendar_for(case.timezone).with_hours(
            self.hours_for(case.customer_address)
        )
        return ClockTerms(
            plan=self.policy.plan(case.plan),
            priority=Priority(case.priority),
            calendar=calendar,
            reminder_share=self.reminder_share,
        )


@dataclass(frozen=True)
class _Cause:
    """When, by whom and why the clocks or the status changed: what the audit entries say."""

    at: datetime
    actor: str
    reason: str


def record_opened(session: Session, case: Case, *, context: SlaContext) -> None:
    """Start the clocks of a case just opened; it inserts the case (the clocks need its id).

    Called before the case is inserted, the deadline goes in with its INSERT instead of
    an UPDATE after.
    """
    decision = on_opened(context.terms(case), case.opened_at)
    # A new case has no clock to end: opening only starts sla_clocks.
    started = [c for c in decision.changes if isinstance(c, Started)]
    sla_clocks.mirror(case, {c.kind: c.due_at for c in started})
    cases.add_case(session, case)
    for change in started:
        sla_clocks.insert_clock(session, case, change.kind, **_times(change))


def record_agent_reply(
    session: Session, case: Case, at: datetime, *, context: SlaContext, actor: str
) -> None:
    """A public agent reply at ``at``: first response met, next update owed from ``at``."""
    running = cases.running_clocks(session, case.id)
    decision = on_agent_reply(context.terms(case), case_clocks(case, running), at)
    _apply(session, case, decision, at, running)
    _clock_event(session, case, decision, _Cause(at, actor, "agent replied"))


def record_customer_reply(
    session: Session, case: Case, at: datetime, *, context: SlaContext, actor: str
) -> None:
    """A customer's message at ``at``: a pending or finished case reopens, its clock restarts."""
    running = cases.running_clocks(session, case.id)
    decision = on_customer_reply(context.terms(case), case_clocks(case, running), at)
    cause = _Cause(at, actor, "customer replied")
    _record_status(session, case, decision, cause)
    _apply(session, case, decision, at, running)
    _clock_event(session, case, decision, cause)


def change_status(
    session: Session,
    case: Case,
    new_status: Status,
    at: datetime,
    *,
    actor: str,
    reason: str,
    context: SlaContext,
) -> bool:
    """Set the case's status and its clocks accordingly; False when it already had it."""
    running = cases.running_clocks(session, case.id)
    decision = on_status(context.terms(case), case_clocks(case, running), new_status, at)
    if decision.status is None:
        return False
    cause = _Cause(at, actor, reason)
    _record_status(session, case, decision, cause)
    _apply(session, case, decision, at, running)
    _clock_event(session, case, decision, cause)
    return True


def change_priority(
    session: Session,
    case: Case,
    new_priority: Priority,
    at: datetime,
    *,
    actor: str,
    reason: str,
    context: SlaContext,
) -> bool:
    """Recategorize the case; running deadlines move. The customer's own claim is kept."""
    old = case.priority
    if new_priority.value == old:
        return False
    running = cases.running_clocks(session, case.id)
    decision = on_priority_change(context.terms(case), case_clocks(case, running), new_priority)
    case.priority = new_priority.value
    case.priority_reason = reason
    case.updated_at = at
    data = {
        "from": old,
        "to": new_priority.value,
        "actor": actor,
        "reason": reason,
        "customer_priority": case.customer_priority,
    }
    cases.add_event(
        session,
        case,
        "priority_changed",
        at,
        actor=actor,
        detail=f"{old} -> {new_priority.value}: {reason}",
        data=data,
    )
    _apply(session, case, decision, at, running)
    _clock_event(session, case, decision, _Cause(at, actor, reason))
    return True


def case_clocks(case: Case, running: Sequence[SlaClock]) -> CaseClocks:
    """The case's status, whether it was answered, and its ``running`` clocks, as pure values."""
    values = tuple(RunningClock(_kind(c.kind), c.started_at, c.due_at) for c in running)
    return CaseClocks(Status(case.status), case.first_responded_at is not None, values)


def _kind(text: str) -> TargetKind:
    return "first" if text == "first" else "update"


def _record_status(session: Session, case: Case, decision: Decision, cause: _Cause) -> None:
    if decision.status is None:
        return
    old, reason = case.status, cause.reason
    case.status = decision.status.value
    case.updated_at = cause.at
    case.closed_at = cause.at if decision.status.is_finished else None
    cases.add_event(
        session,
        case,
        "status_changed",
        cause.at,
        actor=cause.actor,
        detail=f"{old} -> {case.status}: {reason}" if reason else f"{old} -> {case.status}",
        data={"from": old, "to": case.status, "reason": reason},
    )


def _apply(
    session: Session, case: Case, decision: Decision, at: datetime, running: list[SlaClock]
) -> None:
    """Carry out ``decision`` on the case's ``running`` clocks (as loaded; kept up to date).

    The case's columns mirror the clocks still running afterwards: the same as reading
    them again, without the query.
    """
    for change in decision.changes:
        _apply_change(session, case, change, at, running)
    sla_clocks.mirror(case, {c.kind: c.due_at for c in running})


def _apply_change(
    session: Session, case: Case, change: ClockChange, at: datetime, running: list[SlaClock]
) -> None:
    match change:
        case Ended(kind=kind, at=ended_at, state=state):
            sla_clocks.end_clock(case, running, kind, at=ended_at, state=state)
        case Started() | Rescheduled():
            if isinstance(change, Rescheduled):
                # A new row, not an update: the reminder and escalation dedupe keys name the
                # clock row, and a moved deadline deserves its own reminder and escalation.
                sla_clocks.end_clock(case, running, change.kind, at=at, state="stopped")
            running.append(sla_clocks.new_clock(session, case, change.kind, **_times(change)))


def _times(change: Scheduled) -> sla_clocks.ClockTimes:
    """The times ``change`` gives its clock's row."""
    return {"started_at": change.started_at, "due_at": change.due_at, "remind_at": change.remind_at}


def _clock_event(session: Session, case: Case, decision: Decision, cause: _Cause) -> None:
    if not decision.changes:
        return
    described = [_describe(c) for c in decision.changes]
    cases.add_event(
        session,
        case,
        "sla_clocks_changed",
        cause.at,
        actor=cause.actor,
        detail=f"{'; '.join(described)} ({cause.reason})",
        data={"changes": [_as_data(c) for c in decision.changes], "reason": cause.reason},
    )


def _describe(change: ClockChange) -> str:
    match change:
        case Ended(kind=kind, state=state):
            return f"{kind} clock {state}"
        case Started(kind=kind, due_at=due):
            return f"{kind} clock started, due {due.isoformat()}"
        case Rescheduled(kind=kind, due_at=due):
            return f"{kind} clock now due {due.isoformat()}"


def _as_data(change: ClockChange) -> dict[str, Any]:
    values = dataclasses.asdict(change)
    out = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()}
    return {"change": type(change).__name__.lower(), **out}
