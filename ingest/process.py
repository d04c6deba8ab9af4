"""The process stage: one raw message in, one transaction of case changes out.

``Processor`` claims raw mail, analyses it (bounded, see ``ingest.analysis.sandbox``) and runs a
``CaseStep`` in one transaction; ``Outcome`` says what happened.
"""

from __future__ import annotations

import functools
import time
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, assert_never

import structlog
from sqlalchemy.exc import DBAPIError

from ingest.analysis.sandbox import Analyser, InProcess, fail_quietly
from ingest.case_step import CaseStep, UnitOfWork
from ingest.errors import PoisonError
from ingest.outcome import Outcome
from storage import cases, deferred, inbound, write_queue
from storage.statuses import InboundStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

    from ingest.analysis.core import Analysis
    from ingest.mime.parsed import ParsedMail
    from ingest.priority.inference import PriorityDecision
    from ingest.settings import ProcessSettings
    from storage.statuses import SettledStatus

log = structlog.get_logger("mail2case.process")

# A group of messages shares one commit for its attempts and, in turn, transactions of
# its case work; each bounded so that neither memory (the raw bytes of the group are
# held) nor a writer queued behind the transaction (an SMTP commit) waits long.
_GROUP_BYTES = 32 * 1024 * 1024
# How often a transaction waiting for an analysis looks whether a writer waits for it.
_WAITED_FOR_POLL = 0.002


@dataclass(frozen=True)
class Pace:
    """How a processor cuts its work into claims and transactions.

    ``group_size``: messages claimed at once; their analyses are fed to the worker
    ahead, and the worker waits at each group's start and end. ``transaction_seconds``:
    a case-work transaction takes more messages while younger than this, so that a
    writer queued behind it waits a bounded time. ``is_waiting_for_analysis``: the
    transaction waits for a message's analysis, while young and while no other writer
    waits for the lock (``storage.write_queue.is_waited_for``), instead of committing
    at once: fewer commits, each with more messages.
    """

    group_size: int = 16
    transaction_seconds: float = 0.03
    is_waiting_for_analysis: bool = True


# The daemon's: an SMTP commit queued behind a transaction waits at most ~30 ms.
LIVE_PACE = Pace()
# An import's: bigger groups and transactions, a commit (an fsync) every quarter of a
# second rather than every few messages; a daemon on the same database meanwhile
# waits up to that long to commit.
IMPORT_PACE = Pace(group_size=64, transaction_seconds=0.25, is_waiting_for_analysis=True)


class Processor:
    """Turns committed raw mail into cases; ``run_once`` handles one batch."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: ProcessSettings,
        *,
        step: type[CaseStep] | None = None,
        status: InboundStatus = InboundStatus.RECEIVED,
        analyser: Analyser | None = None,
        pace: Pace | None = None,
    ) -> None:
        self.sessions = sessions
        self.pace = pace or LIVE_PACE
        self._settings = settings
        # An import processes its own held rows with a step that sends nothing.
        self.step = step or CaseStep
        self.status = status
        # The daemon passes a Sandbox (ingest.analysis.sandbox): the poison-message bound.
        self.analyser = analyser or InProcess(settings.analysis)
        # Rows this processor claimed whose attempt ended without settling (a database
        # error): its own claim does not make it wait out the claim period.
        self._unsettled: set[int] = set()
        self._counter_ready = False  # the case-reference counter exists (prepare_ref_counter)
        # One thread that feeds the analysis worker ahead of the case work (pipelining).
        self._pipeline: ThreadPoolExecutor | None = None

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
        done = self.handle_many([(i, now) for i in ids])
        return sum(1 for _, outcome in done if outcome is not None)

    def handle(self, inbound_id: int, now: datetime) -> Outcome | None:
        """Process one raw message; a bug on one message quarantines it, never the loop.

        Database errors (locked, gone) propagate: they are transient, the message
        stays pending and the stage retries with backoff.
        """
        return self.handle_many([(inbound_id, now)])[0][1]

    def handle_many(
        self, items: Sequence[tuple[int, datetime]]
    ) -> list[tuple[int, Outcome | None]]:
        """Process raw messages (each at its own time) in few transactions; outcomes in order.

        Each group of messages shares one commit for the counted attempts and few for
        the case work (a savepoint per message only to redo a failure): a fsync per
        group instead of two per message. A message whose earlier attempt never settled
        (the process died, or its transaction failed) is claimed alone, so a poison
        message cannot use up the attempts of the messages around it: a crash during
        a group counts against none of its messages, a crash during a retry against
        the message then being tried. With the analysis in a worker, the next group is
        claimed before a group's case work (see ``_claims_ahead``): a crash then leaves
        up to two groups to come back one message at a time.
        """
        results: dict[int, Outcome | None] = {}
        todo = list(items)
        if todo and not self._counter_ready:
            with self.sessions.begin() as s:
                cases.prepare_ref_counter(s, self.settings.first_ref)
            self._counter_ready = True
        ahead: _Claimed | None = None
        while todo or ahead is not None:
            if ahead is None:
                current, todo = self._claim_next(todo, _GROUP_BYTES)
            else:
                current, ahead = ahead, None
            try:
                if self._claims_ahead(current, todo):
                    ahead, todo = self._claim_next(todo, _GROUP_BYTES - current.raw_bytes)
                results.update(current.outcomes)
                results.update(self._work(current.claims))
            except DBAPIError:
                self._unsettled.update(current.ids)
                if ahead is not None:
                    self._unsettled.update(ahead.ids)
                raise
        return [(i, results.get(i)) for i, _ in items]

    def _next_group(
        self, todo: list[tuple[int, datetime]]
    ) -> tuple[list[tuple[int, datetime]], list[tuple[int, datetime]]]:
        if todo[0][0] in self._unsettled:
            return todo[:1], todo[1:]
        size = next(
            (n for n, (i, _) in enumerate(todo[: self.pace.group_size]) if i in self._unsettled),
            min(len(todo), self.pace.group_size),
        )
        return todo[:size], todo[size:]

    def _claims_ahead(self, current: _Claimed, todo: list[tuple[int, datetime]]) -> bool:
        """Whether to claim the next group before ``current``'s case work.

        With the analysis in a worker, the next group is then fed to the worker while
        this one is worked on, and the worker goes from one group to the next instead of
        waiting, at each group's end, for its case work to commit and the next claim
        (measured: a sixth of the IMAP throughput). Never around a message tried before:
        it is claimed alone, so that a crash it causes is counted against it only. The two
        groups share one group's byte budget, so the raw mail held stays as bounded.
        """
        return (
            bool(todo)
            and current.raw_bytes < _GROUP_BYTES
            and self.analyser.runs_elsewhere
            and not current.is_retry
            and todo[0][0] not in self._unsettled
        )

    def _claim_next(
        self, todo: list[tuple[int, datetime]], max_bytes: int
    ) -> tuple[_Claimed, list[tuple[int, datetime]]]:
        """Claim the next group of ``todo`` and start its analyses; the rest of ``todo``.

        The group stops once ``max_bytes`` of raw mail is claimed (one message at least).
        """
        group, rest = self._next_group(todo)
        is_retry = group[0][0] in self._unsettled
        self.analyser.start()  # its start-up is no message's attempt
        try:
            # A message tried before without settling comes back alone (claim_attempts).
            claims, outcomes, left = self._claim(group, max_bytes)
        except DBAPIError:
            self._unsettled.update(i for i, _ in group)
            raise
        # Before the write transaction (its lock would hold up SMTP commits while the
        # analysis runs), and on any database: the committed claim already keeps other
        # instances off these rows (PostgreSQL used to analyse under the row lock).
        self._start_analyses(claims)
        ids = [i for i, _ in group[: len(group) - len(left)]]
        # Over the group's byte budget: first in the next group.
        return _Claimed(ids, claims, outcomes, is_retry=is_retry), left + rest

    def _claim(
        self, group: list[tuple[int, datetime]], max_bytes: int
    ) -> tuple[list[_Work], dict[int, Outcome | None], list[tuple[int, datetime]]]:
        """Claim the group in one commit, before any work: a crash still finds the claims.

        Returns the claims, the outcomes of rows settled or skipped here, and the part
        of the group left for later (over the group's byte budget).
        """
        claims: list[_Work] = []
        settled: list[tuple[str, Outcome]] = []
        outcomes: dict[int, Outcome | None] = {}
        times = dict(group)
        periods = {
            i: timedelta(0) if i in self._unsettled else self.settings.claim_period for i in times
        }
        with self.sessions.begin() as s:
            answers = inbound.claim_attempts(
                s,
                [i for i, _ in group],
                status=self.status,
                max_attempts=self.settings.max_attempts,
                now=datetime.now(UTC),  # wall time, not the messages' ``now`` (imports)
                claim_periods=periods,
                max_bytes=max_bytes,
            )
            for answer in answers:
                self._unsettled.discard(answer.inbound_id)
                now = times[answer.inbound_id]
                match answer:
                    case inbound.Claimed(inbound_id, claim):
                        claims.append(_Work(inbound_id, now, claim))
                    case inbound.Exhausted():
                        outcome = _exhausted(s, answer, now)
                        settled.append((answer.source, outcome))
                        outcomes[answer.inbound_id] = outcome
                    case inbound.Skipped(inbound_id):
                        outcomes[inbound_id] = None
                    case _:
                        assert_never(answer)
        for source, outcome in settled:
            _log_outcome(source, outcome)
        return claims, outcomes, group[len(answers) :]

    def _work(self, claims: list[_Work]) -> dict[int, Outcome | None]:
        """Analyse the claimed messages and settle them, a bounded transaction at a time.

        With the analysis in a worker process, message n+1 is analysed there while
        message n's case work runs here; a transaction waits for the next analysis
        only while it is young and no other writer waits for the write lock
        (``_is_time_to_commit``).
        """
        outcomes: dict[int, Outcome | None] = {}
        todo = list(claims)
        is_careful = False
        while todo:
            todo[0].wait()  # outside the transaction
            try:
                done, settled = self._transaction(todo, is_careful=is_careful)
            except _CaseWorkFailedError:
                # Its transaction is undone; again, with a savepoint per message, so
                # that only the failing message is quarantined (rare: a bug).
                is_careful = True
                continue
            outcomes.update(done)
            todo = todo[len(done) :]
            for source, outcome in settled:
                _log_outcome(source, outcome)
        return outcomes

    def _transaction(
        self, todo: list[_Work], *, is_careful: bool
    ) -> tuple[dict[int, Outcome | None], list[tuple[str, Outcome]]]:
        """Settle the first messages of ``todo`` in one transaction; their outcomes in order.

        ``is_careful``: each message in a savepoint of its own. Otherwise none (two
        statements a message fewer), and a message whose case work fails undoes the
        whole transaction (:class:`_CaseWorkFailedError`) for the caller to redo.
        """
        began = time.monotonic()
        outcomes: dict[int, Outcome | None] = {}
        settled: list[tuple[str, Outcome]] = []
        # The case work's rows are written at the end, one statement per table.
        with self.sessions.begin() as s, deferred.deferring(s):
            # The rows of the messages left, in one query, their analyses ready or not:
            # one whose analysis comes in during the transaction needs no query of its
            # own (measured: an import's transactions, which wait for analyses, made one
            # for most messages). Rows are claimed already, so locking the ones this
            # transaction does not reach keeps no one else waiting.
            rows = inbound.lock_claimed(s, [w.inbound_id for w in todo], status=self.status)
            deferred.expect_messages(s, sum(1 for w in todo if w.is_ready()))
            # At least one message; more while the transaction is young, so that a
            # writer queued behind it (an SMTP commit) waits a bounded time.
            for index, work in enumerate(todo):
                if settled and self._is_time_to_commit(s, began, work):
                    break
                deferred.expect_messages(s, index + 1)
                # A duplicate check this transaction cannot answer yet: asked in one
                # query with those of every message analysed by now.
                key = _content_key(work)
                if key is not None and not cases.knows_dedupe_key(s, key):
                    cases.look_up_dedupe_keys(s, _content_keys(todo[index:]))
                row = rows.get(work.inbound_id)
                if is_careful:
                    done = self._settle_one(s, work, row)
                else:
                    done = self._settle_trusting(s, work, row)
                outcomes[work.inbound_id] = done[1] if done else None
                if done:
                    settled.append((done[0].source, done[1]))
        return outcomes, settled

    def _is_time_to_commit(self, s: Session, began: float, work: _Work) -> bool:
        """Whether the transaction begun at ``began`` ends before ``work``.

        A pace that waits for the analysis waits only while the transaction is young and
        nobody else waits for the write lock: a slow analysis (up to its time bound) never
        holds the lock past that, and an SMTP commit that comes meanwhile does not wait
        for an analysis (measured: with the analysis in a worker, the daemon's
        transactions held 3.7 messages each, not waiting; see ``bench/README.md``).
        """
        pace = self.pace
        deadline = began + pace.transaction_seconds
        if time.monotonic() >= deadline:
            return True
        if pace.is_waiting_for_analysis:
            engine = s.get_bind()
            while not work.is_ready() and not write_queue.is_waited_for(engine):  # type: ignore[arg-type]
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                work.wait_ready(min(left, _WAITED_FOR_POLL))
        return not work.is_ready()

    def _start_analyses(self, claims: list[_Work]) -> None:
        if not self.analyser.runs_elsewhere:
            for work in claims:
                work.analysis = self._analyse_bounded(work)
            return
        for work in claims:
            null_sender = _is_null_sender(work.claim)
            work.pending = self.analyser.submit(work.claim.raw, null_sender=null_sender)
        if self._pipeline is None:
            self._pipeline = ThreadPoolExecutor(1, thread_name_prefix="analysis")
        self._pipeline.submit(self._run_analyses, [w.pending for w in claims if w.pending])

    def _run_analyses(self, pending: list[Future[Analysis]]) -> None:
        """In the pipeline thread: carry out the analyses, in order, until each is done.

        The analyser keeps the next message in flight while this one's result is taken
        (``ingest.analysis.sandbox``), including the next group's, claimed ahead.
        """
        for future in pending:
            try:
                self.analyser.run_until(future)
            except Exception as exc:  # noqa: BLE001 - a bug: each message's case work sees it
                for left in pending:
                    fail_quietly(left, exc)
                return

    def _analyse_bounded(self, work: _Work) -> Analysis | Exception:
        """The analysis, or what stopped it: handled with the message's case work."""
        with structlog.contextvars.bound_contextvars(inbound_id=work.inbound_id):
            try:
                return self._analyse(work.claim)
            except Exception as exc:  # noqa: BLE001 - quarantined (or retried) in its savepoint
                return exc

    def _settle_one(
        self, s: Session, work: _Work, row: inbound.Pending | None = None
    ) -> tuple[inbound.Pending, Outcome] | None:
        """One message in a savepoint: its case work, or its quarantine if that fails.

        ``row``: the message's row, locked already by this transaction.
        """
        with structlog.contextvars.bound_contextvars(inbound_id=work.inbound_id):
            savepoint = s.begin_nested()
            deferred.begin_scope(s)
            try:
                done = self._case_work(s, work, row)
            except DBAPIError:
                raise  # transient: the whole transaction goes, the messages stay pending
            except Exception as exc:
                log.exception("message.process_failed")
                _roll_back(s, savepoint)
                return self._quarantine(s, work, f"processing failed: {type(exc).__name__}: {exc}")
            if isinstance(done, PoisonError):
                _roll_back(s, savepoint)
                return self._poisoned(s, work, done)
            savepoint.commit()
            deferred.end_scope(s, rolled_back=False)
            return done

    def _settle_trusting(
        self, s: Session, work: _Work, row: inbound.Pending | None = None
    ) -> tuple[inbound.Pending, Outcome] | None:
        """One message with no savepoint: its case work, trusted not to fail.

        A poisoned analysis is known before the case work writes anything, so it is
        recorded here as in a savepoint; a failure of the case work itself raises
        :class:`_CaseWorkFailedError`, which undoes the transaction.
        """
        with structlog.contextvars.bound_contextvars(inbound_id=work.inbound_id):
            try:
                done = self._case_work(s, work, row)
            except DBAPIError:
                raise  # transient: the whole transaction goes, the messages stay pending
            except Exception as exc:
                raise _CaseWorkFailedError from exc
            if isinstance(done, PoisonError):
                return self._poisoned(s, work, done)
            return done

    def _case_work(
        self, s: Session, work: _Work, row: inbound.Pending | None
    ) -> tuple[inbound.Pending, Outcome] | PoisonError | None:
        if row is None:
            row = inbound.lock_pending(s, work.inbound_id, status=self.status, is_claimed=True)
        if row is None:
            return None
        work.wait()
        analysis = work.analysis or self._analyse_bounded(work)
        if isinstance(analysis, PoisonError):
            return analysis
        if isinstance(analysis, Exception):
            raise analysis  # a bug in the analysis: quarantined by the caller
        return work.settle(s, row, self._process(s, row, analysis, work.now))

    def _quarantine(
        self, s: Session, work: _Work, reason: str
    ) -> tuple[inbound.Pending, Outcome] | None:
        row = inbound.lock_pending(s, work.inbound_id, status=self.status, is_claimed=True)
        if row is None:
            return None
        return work.settle(s, row, Outcome(InboundStatus.QUARANTINED, reason=reason[:2000]))

    def _poisoned(
        self, s: Session, work: _Work, exc: PoisonError
    ) -> tuple[inbound.Pending, Outcome] | None:
        """Record why the analysis failed; quarantine once the attempts are used up."""
        claim = work.claim
        attempts = claim.attempts if claim.counted else claim.attempts + 1
        log.warning("message.analysis_failed", kind=exc.kind, reason=exc.reason, attempts=attempts)
        reason = _poison_reason(exc, attempts)
        if attempts >= self.settings.max_attempts:
            return self._quarantine(s, work, reason)
        inbound.record_failure(
            s, work.inbound_id, reason, status=self.status, count=not claim.counted
        )
        return None

    def _analyse(self, claim: inbound.Claim) -> Analysis:
        return self.analyser.analyse(claim.raw, null_sender=_is_null_sender(claim))

    def _process(
        self, s: Session, row: inbound.Pending, analysis: Analysis, now: datetime
    ) -> Outcome:
        if analysis.mail is None or analysis.verdict is None:
            return Outcome(InboundStatus.QUARANTINED, reason=f"parse error: {analysis.parse_error}")
        mail = analysis.mail
        existing = cases.message_by_dedupe_key(s, mail.content_key)
        if existing is not None:
            message_id, case_id = existing
            return Outcome(
                InboundStatus.DUPLICATE, reason=f"same message as #{message_id}", case_id=case_id
            )
        work = UnitOfWork(row, mail, analysis.verdict, now, self._priority_of(analysis, mail))
        return self.step(self.settings, s, work).run()

    def _priority_of(self, analysis: Analysis, mail: ParsedMail) -> Callable[[], PriorityDecision]:
        """The message's priority: the analysis's, else computed when asked for (bounded)."""
        known = analysis.priority
        if known is not None:
            return lambda: known
        return functools.partial(self.analyser.priority, mail)


class _CaseWorkFailedError(Exception):
    """A message's case work failed in a transaction without savepoints: redo it with them."""


@dataclass(frozen=True)
class _Claimed:
    """A group once claimed: its ids, the claims to work on, the rows settled at the claim."""

    ids: list[int]
    claims: list[_Work]
    outcomes: dict[int, Outcome | None]
    is_retry: bool  # one message tried before, claimed alone

    @property
    def raw_bytes(self) -> int:
        """The raw mail the group holds."""
        return sum(len(work.claim.raw) for work in self.claims)


@dataclass
class _Work:
    """One claimed message on its way through a group: its time, bytes and analysis."""

    inbound_id: int
    now: datetime
    claim: inbound.Claim
    analysis: Analysis | Exception | None = None
    pending: Future[Analysis] | None = None  # the analysis, in the pipeline

    def is_ready(self) -> bool:
        """Whether the analysis (if one was started) has finished."""
        return self.pending is None or self.pending.done()

    def wait_ready(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the analysis to finish (it is not taken)."""
        if self.pending is not None:
            futures.wait([self.pending], timeout=seconds)

    def wait(self) -> None:
        """Take the pipeline's analysis once it is done (what stopped it, if it failed)."""
        if self.pending is not None:
            exc = self.pending.exception()
            if exc is not None and not isinstance(exc, Exception):
                raise exc  # KeyboardInterrupt and the like are not the message's
            self.analysis = exc if exc is not None else self.pending.result()
            self.pending = None

    def settle(
        self, s: Session, row: inbound.Pending, outcome: Outcome
    ) -> tuple[inbound.Pending, Outcome]:
        """Settle ``row`` as ``outcome`` says, at this work's time; the pair, for the caller."""
        inbound.settle(
            s,
            row.id,
            status=outcome.status,
            now=self.now,
            reason=outcome.reason,
            case_id=outcome.case_id,
            count_attempt=not self.claim.counted,
        )
        return row, outcome


def _is_null_sender(claim: inbound.Claim) -> bool:
    """Whether SMTP gave the message a null reverse path (bounces, automatic replies)."""
    return claim.source == "smtp" and not claim.mail_from


def _exhausted(s: Session, row: inbound.Exhausted, now: datetime) -> Outcome:
    """Quarantine a row whose attempts are used up (it is locked by this transaction)."""
    # Every attempt so far ended without settling the row: the process died during it
    # (no failure recorded) or the bound stopped it (reason recorded).
    reason = row.reason or f"poison: crashed the worker {row.attempts} times"
    outcome = Outcome(InboundStatus.QUARANTINED, reason=reason)
    inbound.settle(s, row.inbound_id, status=outcome.status, now=now, reason=reason)
    return outcome


def _content_keys(todo: list[_Work]) -> list[str]:
    """The content keys of the messages whose analysis is done and parsed them."""
    return [key for work in todo if (key := _content_key(work)) is not None]


def _content_key(work: _Work) -> str | None:
    """The message's content key, if its analysis is done and parsed it."""
    if not work.is_ready():
        return None
    work.wait()  # done: this only takes the result
    found = work.analysis
    if found is None or isinstance(found, Exception) or found.mail is None:
        return None
    return found.mail.content_key


def _roll_back(s: Session, savepoint: SessionTransaction) -> None:
    """Undo one message's savepoint, and hold again the rows of others it had written."""
    savepoint.rollback()
    deferred.end_scope(s, rolled_back=True)


def _poison_reason(exc: PoisonError, attempts: int) -> str:
    if exc.kind == "crashed":
        return f"poison: crashed the worker {attempts} times"
    return exc.reason


def event_of(status: SettledStatus) -> str:
    """The log event of a message settled as ``status`` (mypy checks every status has one)."""
    match status:
        case InboundStatus.PROCESSED:
            return "message.processed"
        case InboundStatus.DUPLICATE:
            return "message.duplicate_dropped"
        case InboundStatus.SUPPRESSED:
            return "message.suppressed"
        case InboundStatus.QUARANTINED:
            return "message.quarantined"
        case _:
            assert_never(status)


def _log_outcome(source: str, outcome: Outcome) -> None:
    level = log.warning if outcome.status == InboundStatus.QUARANTINED else log.info
    level(
        event_of(outcome.status),
        source=source,
        case_ref=outcome.case_ref,
        reason=outcome.reason,
        case_opened=outcome.opened,
        **outcome.extra,
    )
