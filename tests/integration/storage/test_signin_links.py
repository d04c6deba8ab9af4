"""Sign-in links in the database: used once, refused when expired, counted, pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from storage import signin_links
from storage.models import SigninLink

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LIFE = timedelta(minutes=15)


def test_a_link_is_used_once_by_its_own_address(sessions: sessionmaker[Session]) -> None:
    """The first use wins; a second use, or another address, is refused."""
    with sessions.begin() as s:
        signin_links.issue(s, "L1", "Alice@Team.example", NOW, NOW + LIFE)
    with sessions.begin() as s:
        assert not signin_links.use(s, "L1", "bob@team.example", NOW)
        assert signin_links.use(s, "L1", "alice@team.example", NOW)
        assert not signin_links.use(s, "L1", "alice@team.example", NOW)


def test_an_expired_link_is_refused(sessions: sessionmaker[Session]) -> None:
    """At or after its expiry a link signs nobody in."""
    with sessions.begin() as s:
        signin_links.issue(s, "L2", "alice@team.example", NOW, NOW + LIFE)
    with sessions.begin() as s:
        assert not signin_links.use(s, "L2", "alice@team.example", NOW + LIFE)


def test_links_are_counted_per_address_and_pruned_after_a_day(
    sessions: sessionmaker[Session],
) -> None:
    """The rate limit counts one address's recent links; links expired a day ago go."""
    old = NOW - timedelta(days=2)
    with sessions.begin() as s:
        signin_links.issue(s, "OLD", "alice@team.example", old, old + LIFE)
        signin_links.issue(s, "A1", "alice@team.example", NOW - timedelta(minutes=5), NOW + LIFE)
        signin_links.issue(s, "B1", "bob@team.example", NOW, NOW + LIFE)
    with sessions() as s:
        assert signin_links.issued_since(s, "ALICE@team.example", NOW - timedelta(hours=1)) == 1
        assert set(s.scalars(select(SigninLink.id))) == {"A1", "B1"}
