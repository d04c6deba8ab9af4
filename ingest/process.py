"""The process stage: one raw message in, one transaction of case changes out.

``Processor`` claims raw mail, analyses it (bounded, see ``ingest.sandbox``) and runs a
``CaseStep`` in one transaction; ``Outcome`` says what happened.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.exc import DBAPIError

from ingest.agent_outbox import AgentMailSettings
from ingest.analysis import Analysis, AnalysisSettings
from ingest.case_step import CaseStep
from ingest.errors import PoisonError
from ingest.outcome import Outcome
from ingest.priority import PriorityDecision, PriorityRules
from ingest.sandbox import Analyser, InProcess
from sla import tracking
from storage import cases, inbound
from storage.engine import is_sqlite
from storage.models import Inbound

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

    from ingest.classify import ClassifySettings
    from ingest.customers import CustomerDirectory
    from ingest.parsed import ParsedMail
    from ingest.reply_matching import CaseToken
    from sla.business_hours import BusinessCalendar
    from sla.policy import SlaPolicy

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
    # How long no automatic mail goes to an address that bounced permanently.
    bounce_suppression: timedelta = timedelta(days=7)
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
        return tracking.SlaContext(
            self.policy, self.calendar, self.policy.reminder_share, self.customers.hours_for
        )


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
