"""Importing a mail history: stage it, process it in written order, then settle the threads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ingest.history.written_at import written_at
from sla.clocks import Status
from storage import cases, history, inbound, sla_clocks
from storage.models import Case
from storage.statuses import InboundStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from sqlalchemy.orm import Session, sessionmaker

    from ingest.history.archive_source import ArchivedMessage
    from ingest.outcome import Outcome
    from ingest.process import Processor
    from sla.policy import TargetKind
    from sla.tracking import SlaContext

SOURCE = "import"
STAGE_BATCH = 200
# Held rows handed to the processor at a time: its progress is reported per chunk.
_CHUNK = 64


@dataclass
class ImportSummary:
    """What an import did; ``--json`` prints these fields (others' checks rely on the names)."""

    imported: int = 0
    duplicates: int = 0
    quarantined: int = 0
    suppressed: int = 0
    cases_opened: int = 0
    cases_reopened: int = 0
    already_imported: int = 0
    read: int = 0
    quarantined_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return {
            "imported": self.imported,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "suppressed": self.suppressed,
            "cases_opened": self.cases_opened,
            "cases_reopened": self.cases_reopened,
            "already_imported": self.already_imported,
            "read": self.read,
            "quarantined_ids": self.quarantined_ids,
        }


def stage(
    sessions: sessionmaker[Session],
    messages: Iterable[ArchivedMessage],
    now: datetime,
    summary: ImportSummary,
) -> None:
    """Commit every message not staged before as a held row (idempotent, batch by batch)."""
    batch: list[ArchivedMessage] = []
    for message in messages:
        summary.read += 1
        batch.append(message)
        if len(batch) >= STAGE_BATCH:
            _stage_batch(sessions, batch, now, summary)
            batch = []
    if batch:
        _stage_batch(sessions, batch, now, summary)


def _stage_batch(
    sessions: sessionmaker[Session],
    batch: list[ArchivedMessage],
    now: datetime,
    summary: ImportSummary,
) -> None:
    with sessions.begin() as s:
        known = history.staged_refs(s, SOURCE, (m.ref for m in batch))
        new: list[inbound.NewMail] = []
        for message in batch:
            if message.ref in known:
                summary.already_imported += 1
                continue
            known.add(message.ref)
            new.append(
                inbound.NewMail(
                    message.raw,
                    source_ref=message.ref,
                    status=InboundStatus.HELD,
                    written_at=written_at(message.raw, message.file_time, latest=now),
                )
            )
        inbound.add_mail(s, source=SOURCE, now=now, mails=new)


def held_ids(session: Session) -> list[int]:
    """Staged rows not processed yet, in the order they were written."""
    return history.held_ids(session, InboundStatus.HELD)


def process_held(
    processor: Processor,
    sessions: sessionmaker[Session],
    summary: ImportSummary,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Process held rows oldest first, each at the time it was written (resumable)."""
    with sessions() as s:
        ids = held_ids(s)
        times = history.written_times(s, ids)
    # Several messages per transaction (Processor.handle_many); progress after each chunk.
    for start in range(0, len(ids), _CHUNK):
        chunk = [(i, times.get(i) or datetime.now(UTC)) for i in ids[start : start + _CHUNK]]
        for inbound_id, outcome in processor.handle_many(chunk):
            if outcome is not None:
                _count(summary, outcome, inbound_id)
        if progress is not None:
            progress(start + len(chunk), len(ids))
    # A message the analysis bound stopped stays held with its failure recorded: it gets
    # its remaining attempts now, so that the import ends with it settled (quarantined).
    wanted = set(ids)
    for _ in range(processor.settings.max_attempts):
        with sessions() as s:
            left = [i for i in held_ids(s) if i in wanted]
        if not left:
            break
        for inbound_id, outcome in processor.handle_many(
            [(i, times.get(i) or datetime.now(UTC)) for i in left]
        ):
            if outcome is not None:
                _count(summary, outcome, inbound_id)


def _count(summary: ImportSummary, outcome: Outcome, inbound_id: int) -> None:
    status = outcome.status
    if status == InboundStatus.PROCESSED:
        summary.imported += 1
        summary.cases_opened += int(outcome.opened)
    elif status == InboundStatus.DUPLICATE:
        summary.duplicates += 1
    elif status == InboundStatus.SUPPRESSED:
        summary.suppressed += 1
    elif status == InboundStatus.QUARANTINED:
        summary.quarantined += 1
        summary.quarantined_ids.append(inbound_id)


def open_recent_threads(
    sessions: sessionmaker[Session], since: datetime, context: SlaContext, summary: ImportSummary
) -> None:
    """Open imported threads whose last message is a customer's, written on or after ``since``.

    Their clocks run from that message, so a breach that already happened shows as one;
    nothing is sent for them.
    """
    with sessions() as s:
        candidates = history.threads_awaiting_reply(s, SOURCE, since)
    for case_id, last_at in candidates:
        with sessions.begin() as s:
            case = s.get(Case, case_id)
            if (
                case is None
                or case.status != Status.CLOSED.value
                or cases.running_clocks(s, case.id)
            ):
                continue
            _reopen(s, case, last_at, context)
            summary.cases_reopened += 1


def _reopen(session: Session, case: Case, at: datetime, context: SlaContext) -> None:
    kind: TargetKind = "update" if case.first_responded_at is not None else "first"
    due, remind = context.terms(case).schedule(kind, at)
    case.status = Status.OPEN.value
    case.closed_at = None
    sla_clocks.start_clock(session, case, kind, started_at=at, due_at=due, remind_at=remind)
    sla_clocks.sync_case(session, case)
    cases.add_event(
        session,
        case,
        "status_changed",
        at,
        detail="closed -> open: imported thread awaits a reply",
        data={"from": "closed", "to": "open", "clock": kind},
    )
