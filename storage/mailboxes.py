"""Queries on IMAP mailbox state: the last UID read, UIDVALIDITY and the reader's lease."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.exc import IntegrityError

from storage.models import MailboxState

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from sqlalchemy.orm import Session


class LeaseLostError(Exception):
    """Another instance took this mailbox's lease; stop reading it."""


def stored_uidvalidity(session: Session, name: str) -> int | None:
    """The UIDVALIDITY last seen for the mailbox, or None."""
    return session.scalar(select(MailboxState.uidvalidity).where(MailboxState.name == name))


def take_lease(session: Session, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the mailbox's lease; False while another instance holds it."""
    _ensure_state(session, name, now)
    held = or_(
        MailboxState.lease_owner == owner,
        MailboxState.lease_owner.is_(None),
        MailboxState.lease_expires_at < now,
    )
    result = session.execute(
        update(MailboxState)
        .where(MailboxState.name == name, held)
        .values(lease_owner=owner, lease_expires_at=now + ttl, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_lease(session: Session, name: str, owner: str, now: datetime) -> None:
    """Give the lease up so another instance can take over at once."""
    session.execute(
        update(MailboxState)
        .where(MailboxState.name == name, MailboxState.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None, updated_at=now)
    )


def _ensure_state(session: Session, name: str, now: datetime) -> None:
    if session.scalar(select(MailboxState.name).where(MailboxState.name == name)) is not None:
        return
    try:
        with session.begin_nested():
            session.add(MailboxState(name=name, last_uid=0, updated_at=now))
    except IntegrityError:
        return  # another instance inserted it first: the row exists, which is all we need


def sync_uidvalidity(session: Session, name: str, uidvalidity: int, now: datetime) -> int:
    """The last UID read; reset to 0 when UIDVALIDITY changed (the old UIDs mean nothing).

    The caller compares ``stored_uidvalidity`` before and after to log a change.
    """
    state = session.get_one(MailboxState, name)
    if state.uidvalidity != uidvalidity:
        state.uidvalidity = uidvalidity
        state.last_uid = 0
        state.updated_at = now
    return state.last_uid


def advance(session: Session, name: str, owner: str, uid: int, now: datetime) -> None:
    """Record ``uid`` as read, in the caller's transaction; only the lease holder may.

    Raises:
        LeaseLostError: another instance holds the lease now; the transaction must roll back.
    """
    result = session.execute(
        update(MailboxState)
        .where(MailboxState.name == name, MailboxState.lease_owner == owner)
        .values(
            last_uid=_greatest(MailboxState.last_uid, uid),
            last_error=None,
            updated_at=now,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise LeaseLostError(name)


def _greatest(column: Any, value: int) -> Any:
    # CASE rather than GREATEST/MAX: the same SQL works on SQLite and PostgreSQL.
    return case((column < value, value), else_=column)
