"""Queries on cases, their messages, participants and audit events."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.orm import selectinload

from storage.autoflush import autoflush_for
from storage.deferred import HeldCounter, any_held, barrier, held, hold_or_run, mark_safe
from storage.models import (
    Attachment,
    Case,
    CaseEvent,
    Contact,
    Counter,
    Customer,
    Message,
    SlaClock,
)
from storage.upserts import insert_for, insert_if_absent, table_of

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from datetime import datetime
    from typing import Unpack

    from sqlalchemy.dialects.postgresql import Insert
    from sqlalchemy.orm import Session

    from storage.deferred import DeferredRows

REF_COUNTER = "case_ref"
OPEN_STATUSES = ("open", "pending")

# Built once: statements on the tables (Core) skip the ORM's bulk paths and autoflush,
# and building one cost about as much as executing it.
# The statements marked safe (storage.deferred) are right while a group's rows are held:
# they read no table with held rows, or their callers first check the held rows.
_counters = table_of(Counter).c
_BUMP_REF = mark_safe(
    update(table_of(Counter))
    .where(_counters.name == REF_COUNTER)
    .values(value=_counters.value + 1)
    .returning(_counters.value)
)
_SET_REF = (
    update(table_of(Counter))
    .where(_counters.name == REF_COUNTER)
    .values(value=bindparam("value", type_=_counters.value.type))
)
_CASES = table_of(Case)
_MESSAGES = table_of(Message)
_CLOCKS = table_of(SlaClock)
_INSERT_CASE = insert(_CASES)
_INSERT_EVENT = insert(table_of(CaseEvent))
_INSERT_MESSAGE = insert(_MESSAGES)
_INSERT_MESSAGE_ID = _INSERT_MESSAGE.returning(_MESSAGES.c.id)
_INSERT_ATTACHMENT = insert(table_of(Attachment))
# The reads every message makes, built once likewise; their values come at execution.
_BY_MESSAGE_IDS = mark_safe(
    select(Message.message_id, Message.direction == "out", Message.id, Case)
    .join(Case, Message.case_id == Case.id)
    .where(Message.message_id.in_(bindparam("ids", expanding=True)))
    .order_by(Message.id)
    .limit(200)
)
_BY_DEDUPE_KEY = mark_safe(
    select(Message.id, Message.case_id).where(Message.dedupe_key == bindparam("key"))
)
_BY_DEDUPE_KEYS = mark_safe(
    select(Message.dedupe_key, Message.id, Message.case_id).where(
        Message.dedupe_key.in_(bindparam("keys", expanding=True))
    )
)
_BY_REF = mark_safe(select(Case).where(Case.ref == bindparam("ref")))
_CUSTOMER_BY_NAME = mark_safe(select(Customer.id).where(Customer.name == bindparam("name")))
_RUNNING_CLOCKS = mark_safe(
    select(SlaClock).where(SlaClock.case_id == bindparam("case_id"), SlaClock.state == "running")
)


def prepare_ref_counter(session: Session, first_ref: int) -> None:
    """Create the case-reference counter before the first case, in a transaction of its own.

    Created inside a case's transaction, the counter's INSERT raced another instance's
    like any upsert: with each holding a row the other was about to insert (a customer,
    a contact), PostgreSQL found a deadlock. An existing counter is only ever UPDATEd,
    and its row lock then orders every instance's case creation the same way.
    """
    highest = session.scalar(select(func.max(Case.ref)))
    start = max(first_ref, (highest or 0) + 1)
    # The counter holds the last reference given out: the first bump returns ``start``.
    insert_if_absent(session, Counter, {"name": REF_COUNTER, "value": start - 1})


def next_ref(session: Session, first_ref: int) -> int:
    """Allocate the next case reference (atomic: the counter row is locked by the update).

    In a group's case work (``storage.deferred``) only the first reference is an UPDATE;
    the row stays locked, the next ones are counted on from it and the last is written
    with the group's rows.
    """
    rows = held(session)
    if rows is not None and rows.counter is not None:
        return rows.counter.give()
    bumped: int | None = session.execute(_BUMP_REF).scalar_one_or_none()
    if bumped is not None:
        if rows is not None:
            rows.counter = HeldCounter(_SET_REF, given=bumped, written=bumped)
        return bumped
    highest = session.scalar(select(func.max(Case.ref)))
    start = max(first_ref, (highest or 0) + 1)
    if insert_if_absent(session, Counter, {"name": REF_COUNTER, "value": start}):
        return start
    # Another instance created the counter first and has committed it: bump theirs.
    value: int = session.execute(_BUMP_REF).scalar_one()
    return value


def add_case(session: Session, case: Case) -> None:
    """Insert a new case; it has its id on return.

    In a group's case work (``storage.deferred``) the row is held with the group's and
    the id given out now; otherwise the case is flushed at once.
    """
    rows = held(session)
    if rows is None:
        session.add(case)
        session.flush()
        return
    case.id = rows.next_id(session, _CASES)
    rows.add_object(_CASES, _INSERT_CASE, case)


def case_by_ref(session: Session, ref: int) -> Case | None:
    """The case with reference ``ref``."""
    rows = held(session)
    if rows is not None and ref in rows.values_of(_CASES, "ref"):
        barrier(session)  # opened in this group: found once written
    return session.scalars(_BY_REF, {"ref": ref}).first()


def case_by_external_ref(session: Session, ref: str) -> Case | None:
    """The case imported under the previous system's ticket number ``ref``."""
    return session.scalars(select(Case).where(Case.external_ref == ref)).first()


class ThreadHit(NamedTuple):
    """A stored message carrying a Message-ID a new mail refers to."""

    message_id: str
    ours: bool  # an outgoing message of ours: its Message-ID is one we generated
    row_id: int  # storage order: the first copy of an id has the lowest
    case: Case


def thread_hits(session: Session, message_ids: Sequence[str]) -> list[ThreadHit]:
    """The stored messages carrying any of ``message_ids``, oldest first, with their cases."""
    if not message_ids:
        return []
    held_rows = held(session)
    if held_rows is not None and not held_rows.values_of(_MESSAGES, "message_id").isdisjoint(
        message_ids
    ):
        barrier(session)  # a reply to a message of this group: threaded once it is written
    with autoflush_for(session, Message):  # a changed case's columns are not read
        rows = session.execute(_BY_MESSAGE_IDS, {"ids": list(message_ids)}).all()
    return [ThreadHit(mid or "", bool(ours), row_id, case) for mid, ours, row_id, case in rows]


def message_by_dedupe_key(session: Session, key: str) -> tuple[int, int] | None:
    """(id, case id) of the case message already stored for this content key, if any."""
    rows = held(session)
    if rows is not None:
        known, answer = _answer_in_memory(rows, key)
        if known:
            return answer
    found = session.execute(_BY_DEDUPE_KEY, {"key": key}).first()
    return (found[0], found[1]) if found is not None else None


def _answer_in_memory(rows: DeferredRows, key: str) -> tuple[bool, tuple[int, int] | None]:
    """(whether this transaction knows the answer for ``key``, the answer).

    Known: a held row carries the key, a row the transaction wrote does, or a lookup of
    this transaction answered it and the unit of work has inserted nothing since (held
    rows written since are in ``written_messages``).
    """
    same = next((r for r in rows.rows_of(_MESSAGES) if r.get("dedupe_key") == key), None)
    if same is not None:
        return True, (same["id"], same["case_id"])
    written = rows.written_messages.get(key)
    if written is not None:
        return True, written
    looked_up = _dedupe_memo(rows)
    if key in looked_up:
        return True, looked_up[key]
    return False, None


_DEDUPE_MEMO = "dedupe_keys"


def look_up_dedupe_keys(session: Session, keys: Collection[str]) -> None:
    """Read in one query which of these content keys (of messages to come) are stored.

    :func:`message_by_dedupe_key` then answers for them without a query of its own.
    Keys looked up already in this transaction are not asked again: the processor calls
    this before each message with the keys of all the messages analysed by then (those
    whose analysis came during the transaction were unknown at its start; measured: one
    query each for 921 of an import's 1,000 messages). Only in a group's case work
    (``storage.deferred``); elsewhere this does nothing.
    """
    rows = held(session)
    if rows is None:
        return
    known = _dedupe_memo(rows)
    new = [k for k in dict.fromkeys(keys) if k not in known]
    if not new:
        return
    found = session.execute(_BY_DEDUPE_KEYS, {"keys": new})
    known.update(dict.fromkeys(new))
    known.update({k: (i, c) for k, i, c in found})


def knows_dedupe_key(session: Session, key: str) -> bool:
    """Whether :func:`message_by_dedupe_key` answers for ``key`` without a query."""
    rows = held(session)
    return rows is not None and _answer_in_memory(rows, key)[0]


def _dedupe_memo(rows: DeferredRows) -> dict[str, tuple[int, int] | None]:
    """The content keys looked up in this transaction: stored (id, case id), or None.

    Started afresh once the unit of work has inserted rows since the lookups.
    """
    stamp, known = rows.memo.get(_DEDUPE_MEMO, (-1, {}))
    if stamp != rows.orm_inserts:
        known = {}
        rows.memo[_DEDUPE_MEMO] = (rows.orm_inserts, known)
    return known  # type: ignore[no-any-return]


def customer_id(session: Session, name: str, now: datetime) -> int | None:
    """The id of customer ``name``, created on first use; None for the anonymous default."""
    if not name:
        return None
    rows = held(session)
    memo = rows.memo if rows is not None else {}
    if ("customer", name) not in memo:
        found = session.scalars(_CUSTOMER_BY_NAME, {"name": name}).first()
        if found is None:
            insert_if_absent(session, Customer, {"name": name, "created_at": now})
            found = session.scalars(_CUSTOMER_BY_NAME, {"name": name}).one()
        memo["customer", name] = found  # customers are never removed
    known: int = memo["customer", name]
    return known


def touch_contact(
    session: Session, address: str, display_name: str, cust_id: int | None, now: datetime
) -> None:
    """Record an address we have heard from (first sight wins the display name)."""
    key = address.lower()
    values = {
        "address": key,
        "display_name": display_name[:200],
        "customer_id": cust_id,
        "created_at": now,
    }
    rows = held(session)
    if rows is not None:
        _hold_contact(rows, values)
        return
    if insert_if_absent(session, Contact, values) or cust_id is None:
        return
    session.execute(
        update(Contact)
        .where(Contact.address == key, Contact.customer_id.is_(None))
        .values(customer_id=cust_id)
    )


def _hold_contact(rows: DeferredRows, values: dict[str, Any]) -> None:
    """Hold a contact as an upsert with the same outcome as :func:`touch_contact`'s two steps.

    One held row per address (a statement may not upsert a row twice on PostgreSQL):
    the first sight's name, the first customer id given.
    """
    contacts = table_of(Contact)
    same = next((r for r in rows.rows_of(contacts) if r["address"] == values["address"]), None)
    if same is None:
        rows.add(contacts, _contact_upsert(is_postgres=rows.is_postgres), values)
    elif same["customer_id"] is None:
        same["customer_id"] = values["customer_id"]


@cache
def _contact_upsert(*, is_postgres: bool) -> Insert:
    # Built once per dialect: an existing contact keeps its name and gains a customer.
    contacts = table_of(Contact)
    stmt = insert_for(contacts, is_postgres=is_postgres)
    return stmt.on_conflict_do_update(
        index_elements=[contacts.c.address],
        set_={"customer_id": func.coalesce(contacts.c.customer_id, stmt.excluded.customer_id)},
    )


class EventFields(TypedDict, total=False):
    """An audit entry's optional columns: who ("system" if unsaid), a line, structured data."""

    actor: str
    detail: str
    data: dict[str, Any] | None


def add_event(
    session: Session, case: Case, kind: str, now: datetime, **fields: Unpack[EventFields]
) -> None:
    """Append one entry to the case's audit trail."""
    add_event_for(session, case.id, kind, now, **fields)


def add_event_for(
    session: Session, case_id: int, kind: str, now: datetime, **fields: Unpack[EventFields]
) -> None:
    """Append an audit entry to the case with id ``case_id`` (no Case object at hand)."""
    add_events(session, [event_row(case_id, kind, now, **fields)])


def event_row(
    case_id: int, kind: str, now: datetime, **fields: Unpack[EventFields]
) -> dict[str, Any]:
    """The columns of one audit entry, for :func:`add_events`."""
    return {
        "case_id": case_id,
        "at": now,
        "kind": kind,
        "actor": fields.get("actor", "system"),
        "detail": fields.get("detail", ""),
        "data": fields.get("data") or {},
    }


def add_events(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Append audit entries (:func:`event_row`) now, in order, in one statement.

    Inserted at once rather than at the next flush: ids follow the calls, whoever calls,
    and nothing reads the entries back as objects. The case must be in the database.
    """
    hold_or_run(session, table_of(CaseEvent), _INSERT_EVENT, list(rows))


def assign_owner(session: Session, case: Case, owner: str, now: datetime, *, actor: str) -> bool:
    """Make ``owner`` the case's owner, with an ``owner_changed`` audit entry; False if so already.

    Every way of assigning (the ``#assign`` mail command, the board) comes through here.
    """
    if owner == case.owner:
        return False
    add_event(
        session,
        case,
        "owner_changed",
        now,
        actor=actor,
        detail=f"{case.owner or 'nobody'} -> {owner}",
        data={"from": case.owner, "to": owner},
    )
    case.owner = owner
    return True


def queue_order() -> list[Any]:
    """ORDER BY for the queue: priority, then premier before other plans, then oldest."""
    rank = sql_case({"high": 0, "medium": 1, "low": 2}, value=Case.priority, else_=3)
    plan_rank = sql_case((Case.plan == "premier", 0), else_=1)
    return [rank, plan_rank, Case.opened_at, Case.id]


def list_cases(session: Session, *, open_only: bool, limit: int = 10000) -> list[tuple[Case, int]]:
    """Cases in queue order with their message counts."""
    counts = select(Message.case_id, func.count().label("n")).group_by(Message.case_id).subquery()
    stmt = (
        select(Case, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.case_id == Case.id)
        .order_by(*queue_order())
        .limit(limit)
    )
    if open_only:
        stmt = stmt.where(Case.status.in_(OPEN_STATUSES))
    return [(row[0], int(row[1])) for row in session.execute(stmt)]


def status_counts(session: Session) -> dict[str, int]:
    """How many cases are in each status (statuses with none are missing)."""
    stmt = select(Case.status, func.count()).group_by(Case.status)
    return {row[0]: row[1] for row in session.execute(stmt)}


def case_detail(session: Session, ref: int) -> Case | None:
    """A case with its messages, attachments and events loaded."""
    stmt = (
        select(Case)
        .where(Case.ref == ref)
        .options(
            selectinload(Case.messages).selectinload(Message.attachments),
            selectinload(Case.events),
        )
    )
    return session.scalars(stmt).first()


def running_clocks(session: Session, case_id: int) -> list[SlaClock]:
    """The case's SLA clocks that are still running."""
    if any_held(session, _CLOCKS, lambda row: row["case_id"] == case_id):
        barrier(session)
    with autoflush_for(session, SlaClock):
        return list(session.scalars(_RUNNING_CLOCKS, {"case_id": case_id}))


def attachment_rows(message: Message) -> list[Attachment]:
    """A message's attachments (loaded through the relationship)."""
    return list(message.attachments)


def add_message_row(session: Session, values: Mapping[str, Any]) -> int:
    """Insert a case message from its columns; its id.

    A row, not an object: INSERT ... RETURNING costs a fraction of a flush, and what
    follows needs the message's id only. In a group's case work (``storage.deferred``)
    the row is held with the group's, its id given out now.
    """
    rows = held(session)
    if rows is not None:
        row = _with_message_columns(values, rows.next_id(session, _MESSAGES))
        rows.add(_MESSAGES, _INSERT_MESSAGE, row)
        given: int = row["id"]
        return given
    message_id: int = session.execute(_INSERT_MESSAGE_ID, dict(values)).scalar_one()
    return message_id


def add_message_rows(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert case messages from their columns, in one statement, for nothing to read back."""
    found = held(session)
    if found is None:
        if rows:
            session.execute(_INSERT_MESSAGE, [dict(row) for row in rows])
        return
    # Held rows get their ids here too: on SQLite a row written without one would take
    # the table's next id, which may already be given to a held row.
    for row in rows:
        given = found.next_id(session, _MESSAGES)
        found.add(_MESSAGES, _INSERT_MESSAGE, _with_message_columns(row, given))


def _with_message_columns(values: Mapping[str, Any], message_id: int) -> dict[str, Any]:
    """Every optional column named (at its default where unset): held rows share a statement."""
    return {**_MESSAGE_OPTIONAL, **values, "id": message_id}


# The message columns some rows leave unset, with the value an unset column takes.
_MESSAGE_OPTIONAL: dict[str, Any] = {
    "inbound_id": None,
    "cc_addrs": [],
    "in_reply_to": None,
    "dedupe_key": None,
}


def add_attachment_rows(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert a message's attachment rows (their blobs stored already), in one statement."""
    hold_or_run(session, table_of(Attachment), _INSERT_ATTACHMENT, [dict(row) for row in rows])


def latest_customer_message(
    session: Session, case_id: int, senders: Collection[str]
) -> Message | None:
    """The case's newest customer message from one of ``senders`` (lower-case addresses)."""
    stmt = (
        select(Message)
        .where(
            Message.case_id == case_id,
            Message.direction == "in",
            Message.kind == "customer",
            Message.from_addr.in_(senders),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()
