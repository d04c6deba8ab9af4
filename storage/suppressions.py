"""Queries behind the circuit breaker: bounced addresses and recent automatic mail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from storage.models import Outbox, Suppression
from storage.upserts import insert_if_absent

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from sqlalchemy.orm import Session


def suppress(session: Session, address: str, reason: str, now: datetime, until: datetime) -> None:
    """No automatic mail to ``address`` until ``until`` (extends an earlier suppression)."""
    key = address.lower()
    values = {"address": key, "reason": reason[:1000], "created_at": now, "until": until}
    if insert_if_absent(session, Suppression, values):
        return
    row = session.get_one(Suppression, key)
    row.reason, row.until = reason[:1000], max(row.until, until)


def suppressed(session: Session, addresses: Iterable[str], now: datetime) -> dict[str, str]:
    """The addresses among ``addresses`` that are suppressed at ``now``, with the reason."""
    keys = {a.lower() for a in addresses}
    if not keys:
        return {}
    stmt = select(Suppression.address, Suppression.reason).where(
        Suppression.address.in_(keys), Suppression.until > now
    )
    return {row[0]: row[1] for row in session.execute(stmt)}


def sent_to_since(session: Session, address: str, kinds: Iterable[str], since: datetime) -> int:
    """How many rows of ``kinds`` went to ``address`` (first recipient) since ``since``."""
    stmt = select(func.count()).where(
        Outbox.rcpt_key == address.lower(),
        Outbox.sent_at >= since,
        Outbox.kind.in_(list(kinds)),
    )
    return int(session.scalar(stmt) or 0)


def sent_for_case_since(session: Session, case_id: int, since: datetime) -> int:
    """How many rows about case ``case_id`` were sent since ``since``."""
    stmt = select(func.count()).where(
        Outbox.case_id == case_id, Outbox.status == "sent", Outbox.sent_at >= since
    )
    return int(session.scalar(stmt) or 0)
