"""The process stage: one raw message in, one transaction of case changes out."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.exc import DBAPIError

from ingest import agent_mail
from ingest.agent_outbox import AgentMailSettings, queue_notification
from ingest.analysis import Analysis, AnalysisSettings
from ingest.classify import Classification, ClassifySettings, Kind
from ingest.errors import PoisonError
from ingest.priority import PriorityDecision, PriorityRules
from ingest.reply_matching import CaseToken, is_participant, referenced_ids
from ingest.sandbox import Analyser, InProcess
from sla import tracking
from sla.policy import Priority, SlaPolicy, describe_target
from storage import blobs, cases, inbound, outbox
from storage.engine import is_sqlite
from storage.models import Attachment, Case, Inbound, Message

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

    from ingest.customers import CustomerDirectory, CustomerRule
    from ingest.parsed import ParsedMail
    from sla.business_hours import BusinessCalendar

log = structlog.get_logger("mail2case.process")


@dataclass(frozen=True)
class ProcessSettings:
    """What the process stage needs to know, and nothing else."""

    support_address: str
    support_name: str
    own_addresses: frozenset[str]
    message_id_domain: str
    token: CaseToken
    first_ref: int
    customers: CustomerDirectory
    policy: SlaPolicy
    calendar: BusinessCalendar
    classify: ClassifySettings
    priority_rules: PriorityRules = field(default_factory=PriorityRules.default)
    max_parts: int = 1000
    attachments_dir: Path | None = None
    auto_reply_opens_case: bool = False
    batch_size: int = 50
    agents: AgentMailSettings = field(default_factory=AgentMailSettings)
    # Imports only: the previous system's ticket token, e.g. r"\[Ticket#(\d+)\]".
    ticket_pattern: str = ""
    # Attempts at a message that never settles (a poison message) before quarantine.
    max_attempts: int = 3
    # How long another instance leaves a claimed message alone: more than one attempt.
    claim_period: timedelta = timedelta(seconds=90)

    @property
    def analysis(self) -> AnalysisSettings:
        """The part the pure analysis needs (sent once to a worker process)."""
        return AnalysisSettings(
            classify=self.classify,
            priority_rules=self.priority_rules,
            max_parts=self.max_parts,
            auto_reply_opens_case=self.auto_reply_opens_case,
        )

    def calendar_for(self, tz_name: str) -> BusinessCalendar:
        """The business calendar in a customer's time zone."""
        return dataclasses.replace(self.calendar, tz=ZoneInfo(tz_name))

    @property
    def sla(self) -> tracking.SlaContext:
        """What the SLA clocks need: the policy, the calendar and the reminder share."""
        return tracking.SlaContext(self.policy, self.calendar, self.policy.reminder_share)


@dataclass(frozen=True)
class Outcome:
    """What processing one raw message did, for the canonical log line."""

    status: str
    reason: str | None = None
    case_ref: int | None = None
    case_id: int | None = None
    opened: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Processor:
    """Turns committed raw mail into cases; ``run_once`` handles one batch."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: ProcessSettings,
        *,
        step: type[CaseStep] | None = None,
        status: str = inbound.RECEIVED,
        analyser: Analyser | None = None,
    ) -> None:
        self.sessions = sessions
        self._settings = settings
        # An import processes its own held rows with a step that sends nothing.
        self.step = step or CaseStep
        self.status = status
        # The daemon passes a Sandbox (ingest.sandbox): the poison-message bound.
        self.analyser = analyser or InProcess(settings.analysis)
        # PostgreSQL: analyse under the row lock, so other instances skip the row instead
        # of analysing it too. SQLite: before the write transaction, whose lock would
        # hold up SMTP commits for as long as the analysis runs.
        self._analyse_locked = not is_sqlite(sessions.kw["bind"])
        self._current: Analysis | None = None  # the message in the step, for priority_for
        # Rows this processor claimed whose attempt ended without settling (a database
        # error): its own claim does not make it wait out the claim period.
        self._unsettled: set[int] = set()

    @property
    def settings(self) -> ProcessSettings:
        """The settings; replacing them (SIGHUP) reconfigures the analyser too."""
        return self._settings

    @settings.setter
    def settings(self, value: ProcessSettings) -> None:
        self._settings = value
        self.analyser.reconfigure(value.analysis)

    def run_once(self, now: datetime) -> int:
        """Process pending raw messages, oldest first; returns how many were settled."""
        with self.sessions() as s:
            ids = inbound.pending_ids(s, self.settings.batch_size)
        return sum(1 for i in ids if self.handle(i, now) is not None)

    def handle(self, inbound_id: int, now: datetime) -> Outcome | None:
        """Process one raw message; a bug on one message quarantines it, never the loop.

        Database errors (locked, gone) propagate: they are transient, the message
        stays pending and the stage retries with backoff.
        """
        with structlog.contextvars.bound_contextvars(inbound_id=inbound_id):
            try:
                return self._handle(inbound_id, now)
            except DBAPIError:
                self._unsettled.add(inbound_id)
                raise
            except PoisonError as exc:
                return self._poisoned(inbound_id, now, exc)
            except Exception as exc:
                log.exception("message.process_failed")
                return self._quarantine(
                    inbound_id, now, f"processing failed: {type(exc).__name__}: {exc}"
                )

    def _quarantine(self, inbound_id: int, now: datetime, reason: str) -> Outcome | None:
        with self.sessions.begin() as s:
            row = inbound.lock_pending(s, inbound_id, status=self.status, load_raw=False)
            if row is None:
                return None
            outcome = Outcome("quarantined", reason=reason[:2000])
            inbound.settle(row, status=outcome.status, now=now, reason=outcome.reason)
        _log_outcome(row, outcome)
        return outcome

    def _poisoned(self, inbound_id: int, now: datetime, exc: PoisonError) -> Outcome | None:
        """Record why the analysis failed; quarantine once the attempts are used up."""
        with self.sessions() as s:
            attempts = s.get_one(Inbound, inbound_id).attempts
        log.warning("message.analysis_failed", kind=exc.kind, reason=exc.reason, attempts=attempts)
        reason = _poison_reason(exc, attempts)
        if attempts >= self.settings.max_attempts:
            return self._quarantine(inbound_id, now, reason)
        with self.sessions.begin() as s:
            inbound.record_failure(s, inbound_id, reason, status=self.status)
        return None

    def _handle(self, inbound_id: int, now: datetime) -> Outcome | None:
        """Count the attempt, analyse, then process in one transaction (invariant 4).

        Returns None if the row is settled already or another worker has it.
        """
        claim = self._claim(inbound_id, now)
        if not isinstance(claim, inbound.Claim):
            return claim
        analysis = None if self._analyse_locked else self._analyse(claim)
        with self.sessions.begin() as s:
            row = inbound.lock_pending(
                s, inbound_id, status=self.status, load_raw=False, is_claimed=True
            )
            if row is None:
                return None
            outcome = self._process(s, row, analysis or self._analyse(claim), now)
            inbound.settle(
                row, status=outcome.status, now=now, reason=outcome.reason, case_id=outcome.case_id
            )
        _log_outcome(row, outcome)
        return outcome

    def _claim(self, inbound_id: int, now: datetime) -> inbound.Claim | Outcome | None:
        """Count this attempt in its own commit, before any work: a crash still counts."""
        with self.sessions.begin() as s:
            claim = inbound.claim_attempt(
                s,
                inbound_id,
                status=self.status,
                max_attempts=self.settings.max_attempts,
                now=datetime.now(UTC),  # wall time, not the message's ``now`` (imports)
                claim_period=timedelta(0)
                if inbound_id in self._unsettled
                else self.settings.claim_period,
            )
            self._unsettled.discard(inbound_id)
            if claim is None or isinstance(claim, inbound.Claim):
                return claim
            # Every attempt so far ended without settling the row: the process died
            # during it (no failure recorded) or the bound stopped it (reason recorded).
            reason = claim.reason or f"poison: crashed the worker {claim.attempts} times"
            outcome = Outcome("quarantined", reason=reason)
            inbound.settle(claim, status=outcome.status, now=now, reason=reason)
        _log_outcome(claim, outcome)
        return outcome

    def _analyse(self, claim: inbound.Claim) -> Analysis:
        null_sender = claim.source == "smtp" and not claim.mail_from
        return self.analyser.analyse(claim.raw, null_sender=null_sender)

    def _process(self, s: Session, row: Inbound, analysis: Analysis, now: datetime) -> Outcome:
        if analysis.mail is None or analysis.verdict is None:
            return Outcome("quarantined", reason=f"parse error: {analysis.parse_error}")
        mail = analysis.mail
        existing = cases.message_by_dedupe_key(s, mail.content_key)
        if existing is not None:
            return Outcome(
                "duplicate", reason=f"same message as #{existing.id}", case_id=existing.case_id
            )
        self._current = analysis
        try:
            return self.step(self, s, row, mail, analysis.verdict, now).run()
        finally:
            self._current = None

    def priority_for(self, mail: ParsedMail) -> PriorityDecision:
        """The priority of the message being processed: computed already, else now (bounded)."""
        current = self._current
        if current is not None and current.mail is mail and current.priority is not None:
            return current.priority
        return self.analyser.priority(mail)


class CaseStep:
    """One message's processing inside its transaction (kept apart for readability)."""

    def __init__(  # noqa: PLR0917 - one private call site passes the unit of work
        self,
        proc: Processor,
        s: Session,
        row: Inbound,
        mail: ParsedMail,
        verdict: Classification,
        now: datetime,
    ) -> None:
        self.cfg = proc.settings
        self.priority_for = proc.priority_for
        self.s, self.row, self.mail, self.verdict, self.now = s, row, mail, verdict, now
        self.sender = mail.from_.addr if mail.from_ else (row.mail_from or "")

    def run(self) -> Outcome:
        """Decide what the message does to which case, and do it."""
        case = self._existing_case()
        if self.verdict.kind is Kind.LOOP:
            return Outcome("suppressed", reason=f"loop: {self.verdict.reason}")
        role = agent_mail.judge(
            self.s, case, self.mail, self.verdict, self.row.rcpt_to, self.cfg, self.now
        )
        if role is not None:
            return self._agent_mail(role)
        if case is None and self.verdict.is_automatic and not self._opens_case_anyway():
            return Outcome("suppressed", reason=f"{self.verdict.kind}: {self.verdict.reason}")
        if case is None:
            return self._open_case()
        return self._add_to_case(case)

    def _agent_mail(self, role: agent_mail.Role) -> Outcome:
        """An agent's reply, note or commands, or mail without the authority it claims."""
        case = role.case
        if role.action is agent_mail.Action.ON_BEHALF and role.customer:
            case = self._new_case(self.cfg.customers.resolve(role.customer), role.customer)
            self._start_first_response_clock(case)
        message = self._store_message(case, role.stored_as(self.mail)) if case else None
        extra = agent_mail.act(self.s, role, case, message, self.mail, self.cfg, self.now)
        if case is None:
            return Outcome("suppressed", reason=f"{role.action}: {role.reason}", extra=extra)
        opened = role.case is None
        return Outcome("processed", case_ref=case.ref, case_id=case.id, opened=opened, extra=extra)

    def _opens_case_anyway(self) -> bool:
        return self.cfg.auto_reply_opens_case and self.verdict.kind is Kind.AUTO_REPLY

    def _existing_case(self) -> Case | None:
        ids = referenced_ids(self.mail)
        if self.verdict.bounce and self.verdict.bounce.original_message_id:
            ids.insert(0, self.verdict.bounce.original_message_id)
        found = cases.case_by_message_ids(self.s, ids)
        if found is not None:
            return found
        for ref in self.cfg.token.refs_in(self.mail.subject):
            case = cases.case_by_ref(self.s, ref)
            if case is not None and self._may_join(case):
                return case
        return None

    def _may_join(self, case: Case) -> bool:
        rule = self.cfg.customers.match(case.customer_address)
        return is_participant(
            self.sender,
            customer_address=case.customer_address,
            participants=case.participants,
            customer_domains=rule.domains if rule else (),
            agent=self.verdict.kind is Kind.AGENT,
        )

    def _open_case(self) -> Outcome:
        rule = self.cfg.customers.resolve(self.sender)
        case = self._new_case(rule)
        message = self._store_message(case)
        self._start_first_response_clock(case)
        acked = self._queue_ack(case, rule)
        queue_notification(self.s, case, message, self.mail, self.cfg, self.now, is_new_case=True)
        return Outcome(
            "processed", case_ref=case.ref, case_id=case.id, opened=True, extra={"ack": acked}
        )

    def _new_case(self, rule: CustomerRule, customer: str | None = None) -> Case:
        tz = ZoneInfo(rule.timezone)
        plan = self.cfg.policy.plan(rule.plan_on(self.now.astimezone(tz).date()))
        decision = self.priority_for(self.mail)
        cust_id = cases.customer_id(self.s, rule.name, self.now)
        case = Case(
            ref=cases.next_ref(self.s, self.cfg.first_ref),
            subject=self.mail.subject[:2000],
            status="open",
            priority=decision.priority.value,
            priority_reason=decision.reason,
            customer_priority=decision.customer_priority.value
            if decision.customer_priority
            else None,
            plan=plan.name,
            customer_id=cust_id,
            customer_address=(customer or self.sender).lower(),
            timezone=rule.timezone,
            participants=self._cc_participants(),
            opened_at=self.now,
            updated_at=self.now,
        )
        self.s.add(case)
        self.s.flush()
        if customer is None:
            cases.touch_contact(self.s, self.sender, self._sender_name(), cust_id, self.now)
        else:  # opened by an agent (#customer): the contact is the customer
            cases.touch_contact(self.s, customer, "", cust_id, self.now)
        cases.add_event(
            self.s, case, "opened", self.now, actor=self.sender, data={"plan": plan.name}
        )
        cases.add_event(
            self.s,
            case,
            "priority_set",
            self.now,
            detail=decision.reason,
            data={"priority": case.priority, "customer_priority": case.customer_priority},
        )
        return case

    def _sender_name(self) -> str:
        return self.mail.from_.name if self.mail.from_ else ""

    def _cc_participants(self) -> list[str]:
        ours = self.cfg.own_addresses
        found = [
            a.key for a in (*self.mail.to, *self.mail.cc) if a.key not in ours and "@" in a.key
        ]
        return sorted(set(found) - {self.sender.lower()})

    def _start_first_response_clock(self, case: Case) -> None:
        tracking.record_opened(self.s, case, context=self.cfg.sla)

    def _add_to_case(self, case: Case) -> Outcome:
        message = self._store_message(case)
        case.updated_at = self.now
        if self.verdict.kind is Kind.BOUNCE and self.verdict.bounce:
            b = self.verdict.bounce
            cases.add_event(
                self.s,
                case,
                "bounce",
                self.now,
                actor=self.sender,
                detail=self.verdict.reason,
                data={"recipient": b.recipient, "status": b.status, "diagnostic": b.diagnostic},
            )
        elif self.verdict.kind is Kind.AGENT:
            # Every agent mail on a case counts as a public reply until agents can mark
            # a message internal (a later issue); internal notes must not meet a clock.
            tracking.record_agent_reply(
                self.s, case, self.now, context=self.cfg.sla, actor=self.sender
            )
        elif self.verdict.kind is Kind.CUSTOMER:
            # Reopens a pending, solved or closed case and restarts the clock it owes.
            tracking.record_customer_reply(
                self.s, case, self.now, context=self.cfg.sla, actor=self.sender
            )
            queue_notification(
                self.s, case, message, self.mail, self.cfg, self.now, is_new_case=False
            )
        return Outcome("processed", case_ref=case.ref, case_id=case.id)

    def _store_message(self, case: Case, shape: agent_mail.StoredAs | None = None) -> Message:
        m = self.mail
        kind = shape.kind if shape else self.verdict.kind.value
        msg = Message(
            case_id=case.id,
            inbound_id=self.row.id,
            direction=shape.direction if shape else "in",
            kind=kind,
            from_addr=self.sender.lower(),
            from_name=self._sender_name()[:200],
            to_addrs=[a.addr for a in m.to],
            cc_addrs=[a.addr for a in m.cc],
            subject=m.subject[:2000],
            message_id=shape.message_id if shape else m.message_id,
            in_reply_to=m.in_reply_to[0] if m.in_reply_to else None,
            references=list(m.references),
            at=self.now,
            text=shape.text if shape else m.text,
            dedupe_key=m.content_key,
        )
        self.s.add(msg)
        self.s.flush()
        for att in m.attachments:
            blobs.store_blob(self.s, att.sha256, att.data, self.cfg.attachments_dir)
            self.s.add(
                Attachment(
                    message_id=msg.id,
                    filename=att.filename[:255],
                    content_type=att.content_type[:255],
                    size=att.size,
                    sha256=att.sha256,
                    is_inline=att.is_inline,
                )
            )
        detail = (
            "" if not self.verdict.is_automatic else f"{self.verdict.kind}: {self.verdict.reason}"
        )
        cases.add_event(
            self.s,
            case,
            "message_added",
            self.now,
            actor=self.sender,
            detail=detail,
            data={"message_id": m.message_id, "kind": kind},
        )
        return msg

    def _queue_ack(self, case: Case, rule: CustomerRule) -> bool:
        if self.verdict.is_automatic or self.verdict.kind is Kind.AGENT:
            cases.add_event(
                self.s,
                case,
                "ack_suppressed",
                self.now,
                detail=f"suppressed: {self.verdict.kind}: {self.verdict.reason}",
            )
            return False
        to = _reply_address(self.mail, self.sender)
        if to.lower() in self.cfg.own_addresses or _is_system_address(to):
            cases.add_event(
                self.s, case, "ack_suppressed", self.now, detail=f"suppressed: system address {to}"
            )
            return False
        return self._enqueue_ack(case, rule, to)

    def _enqueue_ack(self, case: Case, rule: CustomerRule, to: str) -> bool:
        plan = self.cfg.policy.plan(case.plan)
        target = plan.target("first", Priority(case.priority))
        subject = "Re: " + self.cfg.token.subject_with_token(case.ref, _strip_re(case.subject))
        message_id = _new_message_id(case.ref, self.cfg.message_id_domain)
        refs = [*self.mail.references, *([self.mail.message_id] if self.mail.message_id else [])]
        due = case.first_response_due
        context = {
            "case_ref": case.ref,
            "ref_token": self.cfg.token.render(case.ref),
            "subject": case.subject,
            "customer_name": self._sender_name() or rule.name,
            "customer_address": to,
            "plan": case.plan,
            "priority": case.priority,
            "priority_reason": case.priority_reason,
            "first_response_words": describe_target(target, plan.clock),
            "first_response_due": due.isoformat() if due else "",
            "first_response_due_local": _local_words(due, case.timezone),
            "support_name": self.cfg.support_name,
            "support_address": self.cfg.support_address,
        }
        queued = outbox.enqueue(
            self.s,
            kind="ack",
            case_id=case.id,
            to_addrs=[to],
            subject=subject,
            template="ack",
            context=context,
            message_id=message_id,
            in_reply_to=self.mail.message_id,
            references=refs[-20:],
            dedupe_key=f"ack:case:{case.ref}",
            now=self.now,
        )
        if queued:
            self.s.add(
                Message(
                    case_id=case.id,
                    direction="out",
                    kind="ack",
                    from_addr=self.cfg.support_address,
                    from_name=self.cfg.support_name,
                    to_addrs=[to],
                    subject=subject,
                    message_id=message_id,
                    in_reply_to=self.mail.message_id,
                    references=refs[-20:],
                    at=self.now,
                    text="",
                )
            )
            cases.add_event(
                self.s, case, "ack_queued", self.now, data={"to": to, "message_id": message_id}
            )
        return queued


_SYSTEM_LOCALS = (
    "mailer-daemon",
    "postmaster",
    "noreply",
    "no-reply",
    "donotreply",
    "do-not-reply",
)


def _is_system_address(address: str) -> bool:
    local = address.lower().partition("@")[0]
    return any(local.startswith(s) for s in _SYSTEM_LOCALS)


def _reply_address(mail: ParsedMail, sender: str) -> str:
    # RFC 5322 3.6.2: replies go to Reply-To when present.
    return mail.reply_to[0].addr if mail.reply_to else sender


def _strip_re(subject: str) -> str:
    text = subject.strip()
    while text[:3].lower() in {"re:", "aw:", "sv:"} or text[:4].lower() in {"fwd:", "re :"}:
        text = text.partition(":")[2].strip()
    return text


def _new_message_id(ref: int, domain: str) -> str:
    return f"<case{ref}.{secrets.token_hex(8)}@{domain}>"


def _local_words(at: datetime | None, tz_name: str) -> str:
    if at is None:
        return ""
    local = at.astimezone(ZoneInfo(tz_name))
    return local.strftime("%a %d %b %Y %H:%M %Z")


def _poison_reason(exc: PoisonError, attempts: int) -> str:
    if exc.kind == "crashed":
        return f"poison: crashed the worker {attempts} times"
    return exc.reason


def _log_outcome(row: Inbound, outcome: Outcome) -> None:
    event = {
        "processed": "message.processed",
        "duplicate": "message.duplicate_dropped",
        "suppressed": "message.suppressed",
        "quarantined": "message.quarantined",
    }[outcome.status]
    level = log.warning if outcome.status == "quarantined" else log.info
    level(
        event,
        source=row.source,
        case_ref=outcome.case_ref,
        reason=outcome.reason,
        case_opened=outcome.opened,
        **outcome.extra,
    )
