"""Queries of ``mail2case import``: staged rows of an imported history and their threads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from storage.models import Inbound, Message

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from sqlalchemy.orm import Session

    from storage.statuses import InboundStatus


def staged_refs(session: Session, source: str, refs: Iterable[str]) -> set[str]:
    """Which of ``refs`` are already stored from ``source`` (an import staged them before)."""
    stmt = select(Inbound.source_ref).where(
        Inbound.source == source, Inbound.source_ref.in_(set(refs))
    )
    return {ref for ref in session.scalars(stmt) if ref is not None}


def held_ids(session: Session, status: InboundStatus) -> list[int]:
    """Rows in ``status`` (staged, not processed yet), in the order they were written."""
    stmt = (
        select(Inbound.id).where(Inbound.status == status).order_by(Inbound.written_at, Inbound.id)
    )
    return list(session.scalars(stmt))


def written_times(session: Session, inbound_ids: list[int]) -> dict[int, datetime | None]:
    """When each of ``inbound_ids`` was written, as the import read it from the message."""
    if not inbound_ids:
        return {}
    stmt = select(Inbound.id, Inbound.written_at).where(Inbound.id.in_(inbound_ids))
    return dict(session.execute(stmt).all())


def threads_awaiting_reply(
    session: Session, source: str, since: datetime
) -> list[tuple[int, datetime]]:
    """Cases whose last message is a customer's from ``source``, written at ``since`` or later.

    Each as (case id, when that message was written).
    """
    last = (
        select(Message.case_id, func.max(Message.at).label("last_at"))
        .group_by(Message.case_id)
        .subquery()
    )
    stmt = (
        select(Message.case_id, Message.at)
        .join(last, (last.c.case_id == Message.case_id) & (last.c.last_at == Message.at))
        .join(Inbound, Inbound.id == Message.inbound_id)
        .where(
            Inbound.source == source,
            Message.direction == "in",
            Message.kind == "customer",
            Message.at >= since,
        )
    )
    return [(case_id, at) for case_id, at in session.execute(stmt)]
