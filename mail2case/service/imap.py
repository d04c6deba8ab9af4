"""IMAP in the daemon: one poller per configured mailbox, each with its own connections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest.sources.imap import MailboxPoller, OAuth2TokenSource
from ingest.sources.lease_owner import new_owner
from ingest.sources.mailbox import ImapClientMailbox

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Coroutine

    from sqlalchemy.orm import Session, sessionmaker

    from ingest.sources.imap_settings import ImapSettings
    from ingest.sources.mailbox import Mailbox
    from mail2case.config.settings import Config

    Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def mailbox_factory(settings: ImapSettings) -> Callable[[], Mailbox]:
    """New ``Mailbox`` connections for one mailbox; an OAuth2 token is re-read per connect."""
    token = OAuth2TokenSource(settings) if settings.uses_oauth2 else None

    def factory() -> Mailbox:
        return ImapClientMailbox(settings, token)

    return factory


def build_imap_services(
    config: Config, sessions: sessionmaker[Session], wake: Callable[[], None]
) -> list[Service]:
    """One long-running poller per mailbox: a failing one never stops the others."""
    # Unique per process: a restarted instance is a new owner. It takes the old lease at
    # once when the old one released it (a clean stop) or provably died on this host.
    owner = new_owner()
    return [MailboxPoller(s, mailbox_factory(s), sessions, wake, owner).run for s in config.imap]
