"""The board's one-time sign-in links: issued, counted per address, used at most once."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, update

from storage.models import SigninLink

KEEP_EXPIRED = timedelta(days=1)

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session


def issue(
    session: Session, link_id: str, address: str, now: datetime, expires_at: datetime
) -> None:
    """Record a link issued to ``address``; links expired over a day ago are dropped on the way.

    A day is kept so that the hourly rate limit always sees every link it counts.
    """
    session.execute(delete(SigninLink).where(SigninLink.expires_at < now - KEEP_EXPIRED))
    session.add(
        SigninLink(id=link_id, address=address.lower(), issued_at=now, expires_at=expires_at)
    )
    session.flush()


def issued_since(session: Session, address: str, since: datetime) -> int:
    """How many links ``address`` was issued since ``since`` (the rate limit's count)."""
    stmt = select(func.count()).where(
        SigninLink.address == address.lower(), SigninLink.issued_at >= since
    )
    return int(session.scalar(stmt) or 0)


def use(session: Session, link_id: str, address: str, now: datetime) -> bool:
    """Mark the link used; False when unknown, for another address, expired or used before.

    One UPDATE decides: of two requests racing with the same link, one wins.
    """
    result = session.execute(
        update(SigninLink)
        .where(
            SigninLink.id == link_id,
            SigninLink.address == address.lower(),
            SigninLink.used_at.is_(None),
            SigninLink.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
