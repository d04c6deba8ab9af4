"""The SLA scheduler: queues "due soon" reminders and "breached" escalations, once per deadline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import structlog

from sla.clocks import describe_remaining
from sla.deadlines import remaining
from sla.policy import Clock
from storage import outbox, sla_clocks

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from sqlalchemy.orm import Session, sessionmaker
    from structlog.typing import FilteringBoundLogger

    from sla.tracking import SlaContext
    from storage.models import Case, SlaClock

NoticeKind = Literal["reminder", "escalation"]
CLOCK_WORDS = {"first": "first response", "update": "update"}
# Bounds one `tick` (the CLI's catch-up): batches in a row before it returns anyway.
MAX_BATCHES_PER_TICK = 1000


@dataclass(frozen=True)
class SchedulerSettings:
    """Where reminders and escalations go, how they look, and when standard ones may go out."""

    team_address: str
    escalation_address: str
    support_name: str
    support_address: str
    message_id_domain: str
    ref_prefix: str = "#"
    team_timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    remind_in_business_hours_only: bool = True
    batch_size: int = 100
    # The case's signed reply address (agents answer a reminder as they answer a
    # notification), or None without a reply secret; given by the composition root,
    # since the signing lives with the agents' mail.
    reply_address: Callable[[int], str | None] = field(default=lambda _ref: None, repr=False)

    @property
    def escalation_to(self) -> str:
        """The escalation address, else the team's."""
        return self.escalation_address or self.team_address


@dataclass(frozen=True)
class Notice:
    """One reminder or escalation a pass handled; ``is_queued`` is False if already queued."""

    kind: NoticeKind
    case_ref: int
    clock_id: int
    clock_kind: str
    due_at: datetime
    to: str
    dedupe_key: str
    is_queued: bool


@dataclass(frozen=True)
class PassResult:
    """What one scheduler pass did."""

    notices: tuple[Notice, ...] = ()
    deferred: int = 0  # standard reminders moved to the next opening (or dropped past due)

    @property
    def handled(self) -> int:
        """Clocks this pass changed; a full batch means more may be waiting."""
        return len(self.notices) + self.deferred


class Scheduler:
    """Finds clocks coming due and missed, and queues one outbox row per deadline for each."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: SchedulerSettings,
        context: SlaContext,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._context = context
        self._log = log or structlog.get_logger("mail2case.sla")

    def run_once(self, now: datetime) -> int:
        """One batch of escalations and reminders due at ``now``; returns the clocks handled."""
        return self.pass_once(now).handled

    def tick(self, now: datetime) -> list[Notice]:
        """Passes until nothing more is due at ``now`` (bounded); returns what they handled."""
        notices: list[Notice] = []
        for _ in range(MAX_BATCHES_PER_TICK):
            result = self.pass_once(now)
            notices += result.notices
            if result.handled < self._settings.batch_size:
                break
        return notices

    def pass_once(self, now: datetime) -> PassResult:
        """One transaction: escalate missed clocks first, then remind those coming due."""
        limit = self._settings.batch_size
        with self._sessions.begin() as s:
            notices = [
                self._escalate(s, c, case, now)
                for c, case in sla_clocks.due_for_escalation(s, now, limit)
            ]
            reminders = [
                self._remind(s, c, case, now)
                for c, case in sla_clocks.due_for_reminder(s, now, limit)
            ]
        notices += [n for n in reminders if n is not None]
        # Logged after the commit, so the log never claims what the database does not hold.
        for notice in notices:
            self._log_notice(notice)
        return PassResult(tuple(notices), sum(n is None for n in reminders))

    def _escalate(self, s: Session, clock: SlaClock, case: Case, now: datetime) -> Notice:
        sla_clocks.mark_breached(clock, now)
        return self._queue(s, "escalation", clock, case, now, to=self._settings.escalation_to)

    def _remind(self, s: Session, clock: SlaClock, case: Case, now: datetime) -> Notice | None:
        if clock.due_at <= now:
            sla_clocks.defer_reminder(clock, None)  # too late to remind: the escalation says it all
            return None
        opening = self._next_opening(case, now)
        if opening is not None:
            # Set the new time rather than skip, so later passes do not read it again.
            sla_clocks.defer_reminder(clock, opening)
            return None
        sla_clocks.mark_reminded(clock, now)
        return self._queue(
            s, "reminder", clock, case, now, to=case.owner or self._settings.team_address
        )

    def _next_opening(self, case: Case, now: datetime) -> datetime | None:
        """When a standard reminder must wait for business hours, the next opening; else None."""
        if not self._settings.remind_in_business_hours_only:
            return None
        if self._context.policy.plan(case.plan).clock is not Clock.BUSINESS:
            return None
        calendar = self._context.calendar_for(case.timezone)
        return None if calendar.is_open(now) else calendar.next_opening(now)

    def _queue(
        self, s: Session, kind: NoticeKind, clock: SlaClock, case: Case, now: datetime, *, to: str
    ) -> Notice:
        key = f"{kind}:clock:{clock.id}"
        # In the agents' thread of the case, with its notifications.
        first = outbox.first_notification_id(s, case.id) if to else None
        queued = bool(to) and outbox.enqueue(
            s,
            kind=kind,
            case_id=case.id,
            to_addrs=[to],
            subject=self._subject(kind, case),
            template=kind,
            context=self._template_context(clock, case, now),
            message_id=outbox.new_message_id(
                f"sla.{kind}.{clock.id}", self._settings.message_id_domain
            ),
            in_reply_to=first,
            references=[first] if first else [],
            dedupe_key=key,
            now=now,
            extra={"reply_to": self._settings.reply_address(case.ref)},
        )
        return Notice(kind, case.ref, clock.id, clock.kind, clock.due_at, to, key, queued)

    def _subject(self, kind: NoticeKind, case: Case) -> str:
        label = "Due soon" if kind == "reminder" else "SLA breached"
        return f"{label}: [{self._settings.ref_prefix}{case.ref}] {case.subject}"[:500]

    def _template_context(self, clock: SlaClock, case: Case, now: datetime) -> dict[str, Any]:
        """The context keys listed at the top of reminder.txt.j2 and escalation.txt.j2.

        The due time travels as UTC with the names of the two zones; the templates show
        it in each (the ``local`` filter): zones appear only in rendering.
        """
        calendar = self._context.calendar_for(case.timezone)
        plan = self._context.policy.plan(case.plan)
        left = remaining(now, clock.due_at, plan.clock, calendar)
        return {
            "case_ref": case.ref,
            "ref_token": f"[{self._settings.ref_prefix}{case.ref}]",
            "subject": case.subject,
            "customer_address": case.customer_address,
            "plan": case.plan,
            "priority": case.priority,
            "clock_kind": CLOCK_WORDS.get(clock.kind, clock.kind),
            "due_utc": clock.due_at.isoformat().replace("+00:00", "Z"),
            "customer_timezone": case.timezone,
            "team_timezone": self._settings.team_timezone.key,
            "time_left_words": describe_remaining(left),
        }

    def _log_notice(self, notice: Notice) -> None:
        event = "sla.reminder_queued" if notice.kind == "reminder" else "sla.breached"
        fields = {"clock_id": notice.clock_id, "clock": notice.clock_kind, "to": notice.to}
        if not notice.to:
            # No team or escalation address configured: nobody to tell, said loudly once.
            self._log.warning(
                "sla.notice_unaddressed", case_ref=notice.case_ref, kind=notice.kind, **fields
            )
        elif notice.is_queued:
            self._log.info(
                event, case_ref=notice.case_ref, due_at=notice.due_at.isoformat(), **fields
            )
        else:
            # Another instance queued it first; its dedupe key made this insert a no-op.
            self._log.debug("sla.notice_already_queued", case_ref=notice.case_ref, **fields)
