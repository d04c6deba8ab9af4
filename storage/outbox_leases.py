"""Outbox leases: a claimed row is kept from other senders while it is delivered.

There is no in-flight status: a row being delivered stays ``queued`` with its
``next_attempt_at`` moved to the end of its lease, so ``claim_due`` skips it until
then, and takes it again if its sender died before recording the outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from storage.models import Outbox
from storage.statuses import OutboxStatus

if TYPE_CHECKING:
    from collections.abc import Collection
    from datetime import datetime

    from sqlalchemy.orm import Session


def take_lease(row: Outbox, until: datetime) -> None:
    """Keep ``row`` from every sender's ``claim_due`` until ``until``."""
    row.next_attempt_at = until


def end_lease(row: Outbox, due_at: datetime) -> None:
    """Give ``row`` back the due time it had before its lease, as if never leased.

    A sent row keeps it for ``outbox list``; a queued row given back is due again at once.
    """
    row.next_attempt_at = due_at


def holds_lease(row: Outbox, attempts: int, until: datetime) -> bool:
    """Whether ``row`` is still as the lease taken at ``attempts`` left it.

    Another sender that took the row once the lease ran out moved ``next_attempt_at``
    to its own lease (a later one), and recording any outcome changes the status or
    the attempts.
    """
    return (
        row.status == OutboxStatus.QUEUED
        and row.attempts == attempts
        and row.next_attempt_at == until
    )


def load_for_outcomes(session: Session, outbox_ids: Collection[int]) -> dict[int, Outbox]:
    """The rows ``outbox_ids`` by id, locked on PostgreSQL until the transaction ends.

    Rows that are gone are missing from the result. Locked in id order, so two senders
    recording overlapping rows (one of them after its lease ran out) cannot deadlock.
    """
    if not outbox_ids:
        return {}
    # Not SKIP LOCKED: another sender holds them only for a claim transaction, briefly.
    stmt = (
        select(Outbox)
        .where(Outbox.id.in_(sorted(outbox_ids)))
        .order_by(Outbox.id)
        .with_for_update()
    )
    return {row.id: row for row in session.scalars(stmt)}
