"""Outbox queries: enqueue idempotently, claim due rows, record each attempt's outcome."""

from __future__ import annotations

import re
import secrets
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from storage.deferred import held, mark_safe
from storage.models import Case, Outbox
from storage.statuses import OutboxStatus
from storage.upserts import table_of

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from datetime import datetime, timedelta

    from sqlalchemy.orm import Session
    from sqlalchemy.sql.dml import Insert

# The statuses `counts` always reports, zero or not (the metrics' and `status`' columns).
COUNTED = (OutboxStatus.QUEUED, OutboxStatus.SENT, OutboxStatus.FAILED)
MAX_ERROR_CHARS = 2000  # last_error is for a human reading `outbox list`, not a log
# A Message-ID is <id-left@id-right>, both RFC 5322 dot-atoms: atoms joined by single dots.
# The left part keeps a plain subset of atext that no client or archive mangles.
_ID_LEFT_UNSAFE = re.compile(r"[^A-Za-z0-9.+=_-]+")
_DOMAIN_UNSAFE = re.compile(r"[^a-z0-9-]+")
MAX_ID_PREFIX = 64
MAX_ID_DOMAIN = 253  # the longest DNS name


def enqueue(
    session: Session,
    *,
    kind: str,
    case_id: int | None,
    to_addrs: Sequence[str],
    subject: str,
    template: str,
    context: Mapping[str, Any],
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
    dedupe_key: str,
    now: datetime,
    extra: Mapping[str, Any] | None = None,
    is_fresh_key: bool = False,
) -> bool:
    """Queue a mail unless one with ``dedupe_key`` exists; True when this call added it.

    ``extra`` sets further columns (Cc, sender name, Reply-To, attachments). Safe when
    two instances race on one key: the database decides (ON CONFLICT DO NOTHING on
    SQLite and PostgreSQL, a SAVEPOINT elsewhere), neither raises.

    ``is_fresh_key``: the key names a row this transaction created (a new case's
    reference, a new message's id), so no row can have it yet. In a group's case work
    (``storage.deferred``) such a row is held and written with the group's; it keeps
    the ON CONFLICT clause, and the call returns True.
    """
    values: dict[str, Any] = {
        **_OPTIONAL,
        "kind": kind,
        "case_id": case_id,
        "to_addrs": list(to_addrs),
        "subject": subject,
        "template": template,
        "context": dict(context),
        "message_id": message_id,
        "in_reply_to": in_reply_to,
        "references": list(references),
        "dedupe_key": dedupe_key,
        "status": OutboxStatus.QUEUED,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
        **(extra or {}),
    }
    dialect = session.get_bind().dialect.name
    rows = held(session)
    if is_fresh_key and rows is not None:
        rows.add(table_of(Outbox), _insert_ignoring_duplicates(dialect), values)
        return True
    if dialect in {"sqlite", "postgresql"}:
        stmt = _insert_ignoring_duplicates(dialect)
        return session.execute(stmt, values).first() is not None
    return _insert_in_savepoint(session, values)


# The columns ``extra`` may set, at their defaults: every row names the same columns,
# so that rows held together share one statement.
_OPTIONAL: dict[str, Any] = {"cc_addrs": [], "from_name": None, "reply_to": None, "attachments": []}


@cache
def _insert_ignoring_duplicates(dialect: str) -> Insert:
    # Built once, the values come with each execution: building it cost as much as
    # running it. On the table: a Core insert skips the ORM's bulk path and autoflush.
    insert_for = sqlite.insert if dialect == "sqlite" else postgresql.insert
    table = table_of(Outbox)
    stmt = insert_for(table).on_conflict_do_nothing(index_elements=[table.c.dedupe_key])
    return stmt.returning(table.c.id)


_FIRST_NOTIFICATION = mark_safe(
    select(Outbox.message_id)
    .where(Outbox.case_id == bindparam("case_id"), Outbox.kind == "notify")
    .order_by(Outbox.id)
    .limit(1)
)


def _insert_in_savepoint(session: Session, values: dict[str, Any]) -> bool:
    try:
        with session.begin_nested():
            session.execute(insert(Outbox).values(values))
    except IntegrityError:
        # Only the unique dedupe key can conflict here: the row is already queued.
        return False
    return True


def claim_due(
    session: Session, now: datetime, limit: int, *, excluding: Collection[int] = ()
) -> list[Outbox]:
    """Queued rows due by ``now``, oldest due first, locked until the transaction ends.

    ``excluding``: ids looked at already in this transaction (the next page of a scan).
    On PostgreSQL the rows are locked FOR UPDATE SKIP LOCKED, so concurrent senders take
    different rows; SQLite has one writer at a time and a single instance.
    """
    stmt = (
        select(Outbox)
        .where(Outbox.status == OutboxStatus.QUEUED, Outbox.next_attempt_at <= now)
        .order_by(Outbox.next_attempt_at, Outbox.id)
        .limit(limit)
    )
    if excluding:
        stmt = stmt.where(Outbox.id.not_in(excluding))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def mark_sent(session: Session, row: Outbox, now: datetime) -> None:
    """Record that the transport accepted ``row``."""
    del session  # the row is attached to it; the signature matches its siblings
    row.status = OutboxStatus.SENT
    row.attempts += 1
    row.sent_at = now
    row.last_error = None
    row.rcpt_key = row.to_addrs[0].lower() if row.to_addrs else None


def mark_suppressed(row: Outbox, now: datetime, reason: str) -> None:
    """Hold ``row`` back for good: the circuit breaker said no (kept, with the reason)."""
    row.status = OutboxStatus.SUPPRESSED
    row.last_error = reason[:MAX_ERROR_CHARS]
    row.next_attempt_at = now


def mark_retry(session: Session, row: Outbox, now: datetime, error: str, delay: timedelta) -> None:
    """Record a temporary failure and when to try ``row`` again."""
    del session
    row.attempts += 1
    row.last_error = error[:MAX_ERROR_CHARS]
    row.next_attempt_at = now + delay


def mark_failed(session: Session, row: Outbox, now: datetime, error: str) -> None:
    """Give up on ``row``: it stays visible as failed until an operator retries it."""
    del session
    row.status = OutboxStatus.FAILED
    row.attempts += 1
    row.last_error = error[:MAX_ERROR_CHARS]
    row.next_attempt_at = now


def retry_now(session: Session, outbox_id: int, now: datetime) -> bool:
    """Requeue a failed row with a fresh budget of attempts; False if it is not failed."""
    row = session.get(Outbox, outbox_id, with_for_update=True)
    if row is None or row.status != OutboxStatus.FAILED:
        return False
    row.status = OutboxStatus.QUEUED
    row.attempts = 0
    row.next_attempt_at = now
    return True


def first_notification_id(session: Session, case_id: int) -> str | None:
    """The Message-ID of the case's first notification to agents, if any.

    Later mail to the agents about the case (notifications, reminders, escalations)
    replies to it, so that it all threads in their mail client.
    """
    # Rows held for this group's write are newer than any written: the written one first.
    found = session.scalars(_FIRST_NOTIFICATION, {"case_id": case_id}).first()
    rows = held(session)
    if found is not None or rows is None:
        return found
    held_ids = (
        r["message_id"]
        for r in rows.rows_of(table_of(Outbox))
        if r["case_id"] == case_id and r["kind"] == "notify"
    )
    return next(held_ids, None)


def list_rows(
    session: Session, *, limit: int = 100, status: OutboxStatus | None = None
) -> list[Outbox]:
    """The newest rows first (optionally only those with ``status``)."""
    stmt = select(Outbox).order_by(Outbox.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Outbox.status == status)
    return list(session.scalars(stmt))


def rows_with_case_refs(session: Session) -> list[tuple[Outbox, int | None]]:
    """Every row, oldest first, with its case's reference (None: mail about no case)."""
    stmt = select(Outbox, Case.ref).outerjoin(Case, Case.id == Outbox.case_id).order_by(Outbox.id)
    return [(row[0], row[1]) for row in session.execute(stmt)]


def counts(session: Session) -> dict[str, int]:
    """Rows per status; every status in :data:`COUNTED` is present, zero if none."""
    stmt = select(Outbox.status, func.count()).group_by(Outbox.status)
    found = {status: int(n) for status, n in session.execute(stmt)}
    return {str(status): found.get(status, 0) for status in COUNTED} | found


def new_message_id(prefix: str, domain: str) -> str:
    """A fresh Message-ID of ours, ``<prefix.random@domain>`` (RFC 5322 msg-id).

    ``prefix`` names what the mail is about for a human reading headers (``case1042``,
    ``sla.reminder.7``); ``domain`` is the configured Message-ID domain. Whatever they
    hold, both come out as dot-atoms (atoms joined by single dots). The domain is
    lower-cased, in its IDNA form, and keeps letters, digits and hyphens ("localhost"
    when nothing is left); the prefix keeps letters, digits, ``+``, ``=``, ``_`` and
    hyphens, any other run of characters made one hyphen ("mail2case" when nothing is
    left). The random part makes the id unique, so the caller stores it and sends it
    unchanged on every attempt.
    """
    atoms = _ID_LEFT_UNSAFE.sub("-", prefix).split(".")
    left = _dot_atom(atoms)[:MAX_ID_PREFIX].strip(".-")
    return f"<{left or 'mail2case'}.{secrets.token_hex(8)}@{_id_domain(domain)}>"


def _id_domain(domain: str) -> str:
    """``domain`` as a lower-case dot-atom of letters, digits and hyphens, or "localhost"."""
    labels = [_DOMAIN_UNSAFE.sub("", _ascii_label(label)) for label in domain.lower().split(".")]
    return _dot_atom(labels)[:MAX_ID_DOMAIN].strip(".") or "localhost"


def _ascii_label(label: str) -> str:
    """An internationalized label in its ASCII form (IDNA), as DNS and mail carry it."""
    if label.isascii():
        return label
    try:
        return label.encode("idna").decode("ascii")
    except UnicodeError:  # not a valid IDNA label: its ASCII letters are what is left
        return label


def _dot_atom(atoms: list[str]) -> str:
    # Empty atoms would make "a..b" or a leading dot: no dot-atom has those.
    return ".".join(atom for atom in atoms if atom)


def count_relays_by_agent_since(session: Session, agent_key: str, since: datetime) -> int:
    """Relays queued after ``since`` by the agent whose key is ``agent_key`` (any case).

    Relay dedupe keys are ``relay:<case>:<agent key>:<content>`` (ingest.agents.outbox).
    """
    stmt = select(func.count()).where(
        Outbox.kind == "relay",
        Outbox.dedupe_key.like(f"relay:%:{agent_key}:%"),
        Outbox.created_at > since,
    )
    return int(session.scalar(stmt) or 0)


def count_queued_since(session: Session, key_prefix: str, since: datetime) -> int:
    """Rows queued after ``since`` whose dedupe key starts with ``key_prefix``."""
    stmt = select(func.count()).where(
        Outbox.dedupe_key.startswith(key_prefix, autoescape=True),
        Outbox.created_at > since,
    )
    return int(session.scalar(stmt) or 0)
