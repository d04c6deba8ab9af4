"""Queries on IMAP mailbox state: the last UID read, UIDVALIDITY, the lease, stored UIDs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.exc import IntegrityError

from storage.inbound import NewMail, add_mail
from storage.models import Inbound, MailboxState

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime, timedelta

    from sqlalchemy.orm import Session


class LeaseLostError(Exception):
    """Another instance took this mailbox's lease; stop reading it."""


def stored_uidvalidity(session: Session, name: str) -> int | None:
    """The UIDVALIDITY last seen for the mailbox, or None."""
    return session.scalar(select(MailboxState.uidvalidity).where(MailboxState.name == name))


def stored_source_refs(session: Session, source: str, refs: Collection[str]) -> dict[str, int]:
    """Inbound row ids already stored under any of ``refs``: one query for a whole chunk."""
    if not refs:
        return {}
    rows = session.execute(
        select(Inbound.source_ref, Inbound.id).where(
            Inbound.source == source, Inbound.source_ref.in_(refs)
        )
    )
    return {ref: row_id for ref, row_id in rows if ref is not None}


def add_received(
    session: Session, source: str, now: datetime, chunk: Sequence[tuple[str, str, bytes]]
) -> dict[str, int]:
    """Insert a chunk of ``(source_ref, mail_from, raw)`` as received mail; id per source_ref.

    One INSERT per table for the chunk (``inbound.add_mail``); the caller's transaction
    commits the chunk as a whole.
    """
    mails = [NewMail(raw, mail_from, source_ref=ref) for ref, mail_from, raw in chunk]
    ids = add_mail(session, source=source, now=now, mails=mails)
    return {ref: row_id for (ref, _, _), row_id in zip(chunk, ids, strict=True)}


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


def lease_holder(session: Session, name: str) -> str | None:
    """Who holds the mailbox's lease now (None: nobody)."""
    return session.scalar(select(MailboxState.lease_owner).where(MailboxState.name == name))


def take_over_lease(
    session: Session, name: str, *, dead: str, owner: str, now: datetime, ttl: timedelta
) -> bool:
    """Take the lease from ``dead``, a holder proven gone; False if it changed hands since."""
    result = session.execute(
        update(MailboxState)
        .where(MailboxState.name == name, MailboxState.lease_owner == dead)
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
