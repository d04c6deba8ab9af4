"""Queries on raw inbound mail: commit it, claim it for processing, settle it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import bindparam, case, func, insert, select, update

from storage.deferred import hold_or_run, mark_safe
from storage.engine import is_sqlite
from storage.models import Inbound, InboundRaw
from storage.statuses import SETTLED, InboundStatus, SettledStatus
from storage.upserts import table_of

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime, timedelta

    from sqlalchemy.orm import Session


def add_inbound(
    session: Session,
    *,
    raw: bytes,
    source: str,
    now: datetime,
    mail_from: str = "",
    rcpt_to: Sequence[str] = (),
    source_ref: str | None = None,
) -> Inbound:
    """Add raw mail to the session; the caller commits before acknowledging it."""
    row = Inbound(
        received_at=now,
        source=source,
        source_ref=source_ref,
        mail_from=mail_from,
        rcpt_to=list(rcpt_to),
        raw=raw,  # into its own table, by the association proxy (models.Inbound.raw)
        size=len(raw),
        status=InboundStatus.RECEIVED,
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class NewMail:
    """One raw message to store, with its envelope (``add_mail``)."""

    raw: bytes
    mail_from: str = ""
    rcpt_to: Sequence[str] = ()
    source_ref: str | None = None
    status: InboundStatus = InboundStatus.RECEIVED
    written_at: datetime | None = None  # an import's: when the message was written


def add_mail(
    session: Session, *, source: str, now: datetime, mails: Sequence[NewMail]
) -> list[int]:
    """Insert raw mail, one INSERT per table however many; their ids, in order.

    What ``add_inbound`` does for one message, without an object and a flush each: an
    SMTP group commit and an import batch store tens to hundreds at a time. The caller
    commits (before acknowledging any of it).
    """
    if not mails:
        return []
    values = [
        {
            "received_at": now,
            "source": source,
            "source_ref": mail.source_ref,
            "mail_from": mail.mail_from,
            "rcpt_to": list(mail.rcpt_to),
            "size": len(mail.raw),
            "status": mail.status,
            "written_at": mail.written_at,
        }
        for mail in mails
    ]
    if is_sqlite(session.get_bind()):  # type: ignore[arg-type]
        # SQLAlchemy cannot promise the order of RETURNING rows on SQLite, and would insert
        # row by row for it; every transaction here holds the write lock from its BEGIN,
        # so the ids after the highest are this one's to give (as SQLite would give them).
        first = (session.scalar(select(func.max(Inbound.id))) or 0) + 1
        ids = list(range(first, first + len(values)))
        session.execute(insert(Inbound), [{**v, "id": i} for v, i in zip(values, ids, strict=True)])
    else:
        stmt = insert(Inbound).returning(Inbound.id, sort_by_parameter_order=True)
        ids = list(session.scalars(stmt, values))
    session.execute(
        insert(InboundRaw),
        [{"inbound_id": row_id, "raw": mail.raw} for row_id, mail in zip(ids, mails, strict=True)],
    )
    return ids


def pending_ids(session: Session, limit: int) -> list[int]:
    """Ids of raw mail not yet processed, oldest first."""
    stmt = (
        select(Inbound.id)
        .where(Inbound.status == InboundStatus.RECEIVED)
        .order_by(Inbound.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class Pending:
    """A pending row, locked for its case work: what the case step reads of it.

    Plain columns, not an ORM object: the process stage settles the row with one UPDATE,
    and a loaded object would cost a unit-of-work flush in every message's savepoint.
    """

    id: int
    source: str
    mail_from: str
    rcpt_to: list[str]


# Marked safe (storage.deferred): a row being settled is not read again in its group.
_PENDING = mark_safe(select(Inbound.id, Inbound.source, Inbound.mail_from, Inbound.rcpt_to))


def lock_pending(
    session: Session,
    inbound_id: int,
    *,
    status: InboundStatus = InboundStatus.RECEIVED,
    is_claimed: bool = False,
) -> Pending | None:
    """The row if it is still pending, locked for this transaction (skipped if another has it).

    ``is_claimed``: the caller holds the row's claim, so it waits for a lock another
    instance holds briefly (while it looks at the claim) instead of skipping the row.
    """
    stmt = _PENDING.where(Inbound.id == inbound_id, Inbound.status == status)
    if not is_sqlite(session.get_bind()):  # type: ignore[arg-type]
        stmt = stmt.with_for_update(skip_locked=not is_claimed)
    found = session.execute(stmt).first()
    return Pending(*found) if found is not None else None


def lock_claimed(
    session: Session, inbound_ids: Sequence[int], *, status: InboundStatus = InboundStatus.RECEIVED
) -> dict[int, Pending]:
    """The claimed rows still pending, by id, locked for this transaction (one query).

    The caller holds their claims: on PostgreSQL it waits for a lock another instance
    holds briefly (while it looks at the claim) instead of skipping the row.
    """
    if not inbound_ids:
        return {}
    stmt = _PENDING.where(Inbound.id.in_(inbound_ids), Inbound.status == status)
    if not is_sqlite(session.get_bind()):  # type: ignore[arg-type]
        stmt = stmt.with_for_update()
    return {row[0]: Pending(*row) for row in session.execute(stmt)}


@dataclass(frozen=True)
class Claim:
    """One counted attempt at a pending row: what the analysis needs, read once."""

    raw: bytes
    source: str
    mail_from: str
    attempts: int  # counted so far, this one included when ``counted``
    last_failure: str | None
    # A claim in a group is not counted at once: a crash during it is nobody's fault in
    # particular. Its failure, when the process lives to record one, is (record_failure).
    counted: bool = True


@dataclass(frozen=True)
class Claimed:
    """The row is the caller's to work on now (its claim is committed with the caller's)."""

    inbound_id: int
    claim: Claim


@dataclass(frozen=True)
class Exhausted:
    """The row has used up its attempts without settling: the caller quarantines it.

    The row stays locked by the caller's transaction; ``reason`` is its last recorded
    failure, None when every attempt died with the process.
    """

    inbound_id: int
    source: str
    attempts: int
    reason: str | None


@dataclass(frozen=True)
class Skipped:
    """The row is not the caller's: settled already, or held by another worker."""

    inbound_id: int


ClaimResult = Claimed | Exhausted | Skipped


def claim_attempts(
    session: Session,
    inbound_ids: Sequence[int],
    *,
    status: InboundStatus = InboundStatus.RECEIVED,
    max_attempts: int,
    now: datetime,
    claim_periods: Mapping[int, timedelta],
    max_bytes: int,
) -> list[ClaimResult]:
    """Claim pending rows before they are worked on (the caller commits).

    In order, one result per id looked at (see :data:`ClaimResult`). On PostgreSQL a row
    claimed less than its ``claim_periods`` ago belongs to the instance that claimed it;
    SQLite has one instance, so an old claim is a dead process's. Two queries for the
    group; stops once ``max_bytes`` of raw mail is claimed: ids left out of the answer
    were not looked at (their rows are untouched).

    An attempt is counted only against a message claimed alone. A crash during a group
    says nothing about which message caused it (mostly none did: the process was
    killed), so the group's rows are only marked (``claimed_at``); a row marked or tried
    before comes back alone, and that try counts. A real poison message is therefore
    quarantined after ``max_attempts`` tries of its own, never for its neighbours' luck.
    """
    is_shared = not is_sqlite(session.get_bind())  # type: ignore[arg-type]
    rows = _lock_for_claim(session, inbound_ids, status, is_shared=is_shared)
    # A chosen row stands in for its Claimed until the group's raw bytes are read.
    answers: list[ClaimResult | _ClaimRow] = []
    chosen: list[_ClaimRow] = []
    loaded = 0
    for inbound_id in inbound_ids:
        if loaded >= max_bytes:
            break
        row = rows.get(inbound_id)
        if row is None or (is_shared and _is_claimed(row, now, claim_periods[inbound_id])):
            answers.append(Skipped(inbound_id))
            continue
        if row.attempts >= max_attempts:
            answers.append(Exhausted(inbound_id, row.source, row.attempts, row.reason))
            continue
        is_retry = row.attempts > 0 or row.claimed_at is not None
        if is_retry and chosen:
            break  # it comes first, and alone, in the next group
        chosen.append(row)
        loaded += row.size or 0
        answers.append(row)
        if is_retry:
            break
    return _with_claims(session, answers, chosen, now)


class _ClaimRow(NamedTuple):
    """What the claim reads of a pending row (no raw bytes: those only for the chosen)."""

    id: int
    source: str
    mail_from: str
    attempts: int
    claimed_at: datetime | None
    size: int | None
    reason: str | None


# Columns and one UPDATE, not loaded objects: an object for each row of a group and a
# unit-of-work flush to mark them cost more than the claim's two queries.
_CLAIM_ROWS = select(
    Inbound.id,
    Inbound.source,
    Inbound.mail_from,
    Inbound.attempts,
    Inbound.claimed_at,
    Inbound.size,
    Inbound.reason,
)
_INBOUND = table_of(Inbound)
_MARK_CLAIMED = update(_INBOUND).where(_INBOUND.c.id.in_(bindparam("ids", expanding=True)))


def _lock_for_claim(
    session: Session, inbound_ids: Sequence[int], status: InboundStatus, *, is_shared: bool
) -> dict[int, _ClaimRow]:
    """The rows still in ``status``, by id, without their raw bytes; locked when shared."""
    stmt = _CLAIM_ROWS.where(Inbound.id.in_(inbound_ids), Inbound.status == status)
    if is_shared:
        stmt = stmt.with_for_update(skip_locked=True)
    return {row.id: _ClaimRow(*row) for row in session.execute(stmt)}


def _is_claimed(row: _ClaimRow, now: datetime, period: timedelta) -> bool:
    """Whether another instance's claim on ``row`` still holds."""
    return row.claimed_at is not None and now - row.claimed_at < period


def _with_claims(
    session: Session,
    answers: list[ClaimResult | _ClaimRow],
    chosen: list[_ClaimRow],
    now: datetime,
) -> list[ClaimResult]:
    """The answers, each chosen row as its Claimed: counted if alone, raw bytes read at once."""
    alone = len(chosen) == 1
    if chosen:
        marks: dict[str, Any] = {"claimed_at": now}
        if alone:
            marks["attempts"] = _INBOUND.c.attempts + 1
        session.execute(_MARK_CLAIMED.values(marks), {"ids": [row.id for row in chosen]})
    raw = _raw_of(session, [row.id for row in chosen])
    return [
        Claimed(
            a.id,
            Claim(
                raw[a.id],
                a.source,
                a.mail_from,
                a.attempts + 1 if alone else a.attempts,
                a.reason,
                counted=alone,
            ),
        )
        if isinstance(a, _ClaimRow)
        else a
        for a in answers
    ]


def _raw_of(session: Session, inbound_ids: list[int]) -> dict[int, bytes]:
    if not inbound_ids:
        return {}
    found = session.execute(
        select(InboundRaw.inbound_id, InboundRaw.raw).where(InboundRaw.inbound_id.in_(inbound_ids))
    )
    return {row[0]: row[1] for row in found}


def record_failure(
    session: Session,
    inbound_id: int,
    reason: str,
    *,
    status: InboundStatus,
    count: bool = False,
) -> None:
    """Note why the last attempt failed on a row that stays pending.

    ``count``: the attempt was not counted when claimed (it was in a group); it is now,
    because this failure is the message's own.
    """
    session.execute(
        update(Inbound)
        .where(Inbound.id == inbound_id, Inbound.status == status)
        .values(
            reason=reason[:2000],
            claimed_at=None,
            attempts=Inbound.attempts + 1 if count else Inbound.attempts,
        )
    )


def settle(
    session: Session,
    inbound_id: int,
    *,
    status: SettledStatus,
    now: datetime,
    reason: str | None = None,
    case_id: int | None = None,
    count_attempt: bool = False,
) -> None:
    """Record the outcome of processing one raw message (one UPDATE).

    ``count_attempt``: the attempt that settles it was claimed in a group, uncounted; a
    settled row's ``attempts`` says how many tries it took, this one included.
    """
    if status not in SETTLED:
        raise ValueError(f"unknown inbound status {status!r}")
    row = {
        "b_id": inbound_id,
        "b_status": status,
        "b_reason": reason,
        "b_case_id": case_id,
        "b_processed_at": now,
        "b_counted": 1 if count_attempt else 0,
    }
    # In a group's case work, one UPDATE for the group's rows (storage.deferred).
    hold_or_run(session, table_of(Inbound), _SETTLE, [row])


# One compiled statement on the table (not the ORM entity): an ORM-enabled UPDATE built
# per call cost more than the unit-of-work flush it replaced. Nothing in the
# transaction holds the settled row as an object with changes of its own.
_SETTLE = (
    update(table_of(Inbound))
    .where(table_of(Inbound).c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        reason=bindparam("b_reason"),
        case_id=bindparam("b_case_id"),
        processed_at=bindparam("b_processed_at"),
        claimed_at=None,
        attempts=table_of(Inbound).c.attempts + bindparam("b_counted"),
    )
)


def requeue(session: Session, inbound_id: int) -> bool:
    """Put a quarantined or suppressed message back in the queue for reprocessing.

    Imported history goes back to ``held``: the import re-runs it, with nothing sent.
    """
    result = session.execute(
        update(Inbound)
        .where(
            Inbound.id == inbound_id,
            Inbound.status.in_((InboundStatus.QUARANTINED, InboundStatus.SUPPRESSED)),
        )
        .values(
            status=case(
                (Inbound.source == "import", InboundStatus.HELD), else_=InboundStatus.RECEIVED
            ),
            reason=None,
            attempts=0,  # a fresh start: the operator asked for it
            claimed_at=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def quarantined(session: Session, limit: int = 1000) -> list[Inbound]:
    """Quarantined messages, newest first."""
    stmt = (
        select(Inbound)
        .where(Inbound.status == InboundStatus.QUARANTINED)
        .order_by(Inbound.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def status_counts(session: Session) -> dict[str, int]:
    """How many raw messages are in each status."""
    rows = session.execute(select(Inbound.status, func.count()).group_by(Inbound.status))
    return {row[0]: row[1] for row in rows}
