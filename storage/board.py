"""The queue board's reads: the open queue with its next deadlines, a case's clocks, the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from storage.cases import OPEN_STATUSES, queue_order
from storage.models import Attachment, Case, Customer, Message, SlaClock

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.engine import Row, RowMapping
    from sqlalchemy.orm import Session
    from sqlalchemy.sql import Select

    AnySelect = Select[*tuple[Any, ...]]
    AnyRow = Row[*tuple[Any, ...]]

RUNNING = "running"


@dataclass(frozen=True)
class QueueFilter:
    """What the queue is narrowed to; empty fields do not narrow it."""

    plan: str = ""
    priority: str = ""
    status: str = ""
    owner: str = ""  # an address, or "-" for cases nobody owns
    customer: str = ""  # part of the customer's address or name
    search: str = ""  # a case reference, or part of the subject or of a sender's address


def _next_deadlines() -> Any:
    """Per case, the soonest due time and reminder time of its running clocks."""
    return (
        select(
            SlaClock.case_id,
            func.min(SlaClock.due_at).label("due_at"),
            func.min(SlaClock.remind_at).label("remind_at"),
        )
        .where(SlaClock.state == RUNNING)
        .group_by(SlaClock.case_id)
        .subquery("next_deadlines")
    )


def queue_statement(wanted: QueueFilter, limit: int) -> AnySelect:
    """The open queue in queue order, one row per case, with its next deadline."""
    deadlines = _next_deadlines()
    stmt = (
        select(
            Case.ref,
            Case.subject,
            Case.customer_address,
            Customer.name.label("customer_name"),
            Case.plan,
            Case.priority,
            Case.customer_priority,
            Case.status,
            Case.owner,
            Case.opened_at,
            deadlines.c.due_at,
            deadlines.c.remind_at,
        )
        .outerjoin(Customer, Customer.id == Case.customer_id)
        .outerjoin(deadlines, deadlines.c.case_id == Case.id)
        .where(Case.status.in_(OPEN_STATUSES))
        .order_by(*queue_order())
        .limit(limit)
    )
    return _narrowed(stmt, wanted)


def _narrowed(stmt: AnySelect, wanted: QueueFilter) -> AnySelect:
    for column, value in (
        (Case.plan, wanted.plan),
        (Case.priority, wanted.priority),
        (Case.status, wanted.status),
    ):
        if value:
            stmt = stmt.where(column == value)
    if wanted.owner == "-":
        stmt = stmt.where(Case.owner.is_(None))
    elif wanted.owner:
        stmt = stmt.where(func.lower(Case.owner) == wanted.owner.lower())
    if wanted.customer:
        pattern = _contains(wanted.customer)
        stmt = stmt.where(
            or_(
                func.lower(Case.customer_address).like(pattern, escape="\\"),
                func.lower(Customer.name).like(pattern, escape="\\"),
            )
        )
    if wanted.search:
        stmt = stmt.where(_search(wanted.search))
    return stmt


def _contains(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search(text: str) -> Any:
    """A reference (digits, with or without its prefix), or text in a subject or a sender."""
    pattern = _contains(text.strip())
    sender = (
        select(Message.id)
        .where(Message.case_id == Case.id, func.lower(Message.from_addr).like(pattern, escape="\\"))
        .exists()
    )
    found = [
        func.lower(Case.subject).like(pattern, escape="\\"),
        func.lower(Case.customer_address).like(pattern, escape="\\"),
        sender,
    ]
    digits = text.strip().lstrip("[#").rstrip("]")
    if digits.isdigit():
        found.append(Case.ref == int(digits))
    return or_(*found)


def open_queue(session: Session, wanted: QueueFilter, limit: int) -> Sequence[RowMapping]:
    """The rows of :func:`queue_statement` by column name (no ORM objects are built)."""
    return session.connection().execute(queue_statement(wanted, limit)).mappings().all()


def count_open(session: Session, wanted: QueueFilter) -> int:
    """How many open cases :func:`queue_statement` would list without its limit."""
    stmt = (
        select(func.count(Case.id))
        .outerjoin(Customer, Customer.id == Case.customer_id)
        .where(Case.status.in_(OPEN_STATUSES))
    )
    return int(session.scalar(_narrowed(stmt, wanted)) or 0)


def case_clocks(session: Session, case_id: int) -> list[SlaClock]:
    """Every SLA clock a case has had, in the order they started."""
    stmt = select(SlaClock).where(SlaClock.case_id == case_id).order_by(SlaClock.id)
    return list(session.scalars(stmt))


def case_attachment(session: Session, ref: int, attachment_id: int) -> Attachment | None:
    """Attachment ``attachment_id`` if it belongs to a message of case ``ref``."""
    stmt = (
        select(Attachment)
        .join(Message, Message.id == Attachment.message_id)
        .join(Case, Case.id == Message.case_id)
        .where(Attachment.id == attachment_id, Case.ref == ref)
    )
    return session.scalars(stmt).first()


def clocks_due_between(session: Session, since: datetime, until: datetime) -> Sequence[AnyRow]:
    """Clocks due in [since, until): plan, priority, kind, state, due, ended and breached."""
    stmt = (
        select(
            Case.plan,
            Case.priority,
            SlaClock.kind,
            SlaClock.state,
            SlaClock.due_at,
            SlaClock.ended_at,
            SlaClock.breached_at,
        )
        .join(Case, Case.id == SlaClock.case_id)
        .where(SlaClock.due_at >= since, SlaClock.due_at < until)
    )
    return session.execute(stmt).all()


def open_case_ages(session: Session) -> list[datetime]:
    """When each open or pending case was opened (the backlog by age)."""
    stmt = select(Case.opened_at).where(Case.status.in_(OPEN_STATUSES))
    return list(session.scalars(stmt))
