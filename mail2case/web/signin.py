"""Sign-in to the board: one-time links, signed, short-lived, single-use, rate-limited.

A link carries ``{address, link id}`` signed with the board's key (itsdangerous, with a
timestamp checked against ``[web] link_minutes``). The database keeps each link id: a
link is used once (one UPDATE decides), and an address is sent at most
``links_per_hour`` of them by mail. Only agents ([agents] addresses and domains) are
ever issued one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import structlog
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ingest.agents.outbox import is_agent
from mail2case import app
from mail2case.config.reader import ConfigError
from storage import outbox, signin_links

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

    from ingest.triage.classify import ClassifySettings
    from mail2case.config.settings import Config

log = structlog.get_logger("mail2case.web")
MIN_KEY_CHARS = 32
LINK_SALT = "mail2case.board.signin"
RATE_WINDOW = timedelta(hours=1)  # [web] links_per_hour


def load_key(path: Path) -> str:
    """The board's signing key from ``path``, created (mode 0600) when missing.

    Raises:
        ConfigError: naming ``web.session_secret_file``, when it cannot be read or made,
            or holds too short a key.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise _key_error(path, f"cannot create: {exc.strerror}") from exc
    else:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise _key_error(path, f"cannot read: {exc.strerror}") from exc
    if len(key) < MIN_KEY_CHARS:
        raise _key_error(path, f"must hold a key of at least {MIN_KEY_CHARS} characters")
    return key


def _key_error(path: Path, problem: str) -> ConfigError:
    return ConfigError([f"web.session_secret_file: {problem} (got {str(path)!r})"])


def derived_key(key: str, purpose: str) -> str:
    """A key for one purpose (links, cookies), so that no token serves as another."""
    return hmac.new(key.encode(), purpose.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Link:
    """A link issued: its URL and id."""

    url: str
    link_id: str


class SignIn:
    """Issues and redeems sign-in links for the agents of one configuration."""

    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
        key: str,
        agents: Callable[[], ClassifySettings] | None = None,
    ) -> None:
        """``agents``: who the agents are now (the daemon's, which SIGHUP replaces)."""
        self.config = config
        self.web = config.web
        self.sessions = sessions
        self.serializer = URLSafeTimedSerializer(derived_key(key, "links"), salt=LINK_SALT)
        self.session_key = derived_key(key, "sessions")  # signs the session cookie
        self._live_agents = agents
        self._fixed_agents = app.process_settings(config, config.business_hours.calendar).classify

    def agents(self) -> ClassifySettings:
        """Who the agents are: the daemon's current settings, else this config's."""
        return self._fixed_agents if self._live_agents is None else self._live_agents()

    def is_agent(self, address: str) -> bool:
        """Whether ``address`` belongs to an agent: the only people the board lets in."""
        return "@" in address and is_agent(address, self.agents())

    def issue(self, s: Session, address: str, now: datetime) -> Link:
        """A new link for ``address`` (the caller has checked that it is an agent's)."""
        link_id = secrets.token_urlsafe(18)
        address = address.strip().lower()
        signin_links.issue(s, link_id, address, now, now + self.web.link_lifetime)
        token = self.serializer.dumps({"a": address, "l": link_id})
        return Link(f"{self.web.url}/signin/link?{urlencode({'token': token})}", link_id)

    def mail_link(self, address: str, now: datetime) -> bool:
        """Queue a link to ``address`` through the outbox; False for a non-agent or the limit.

        The caller answers the same either way: the page tells nobody who is an agent.
        """
        address = address.strip().lower()
        if not self.is_agent(address):
            log.info("signin.refused", reason="not an agent")
            return False
        with self.sessions.begin() as s:
            recent = signin_links.issued_since(s, address, now - RATE_WINDOW)
            if recent >= self.web.links_per_hour:
                log.warning("signin.rate_limited", address=address)
                return False
            link = self.issue(s, address, now)
            self._enqueue(s, address, link, now)
        log.info("signin.link_queued", address=address)
        return True

    def _enqueue(self, s: Session, address: str, link: Link, now: datetime) -> None:
        support = self.config.support
        outbox.enqueue(
            s,
            kind="signin",
            case_id=None,
            to_addrs=[address],
            subject=f"{support.name}: your sign-in link to the queue board",
            template="signin",
            context={
                "url": link.url,
                "minutes": int(self.web.link_lifetime.total_seconds() // 60),
                "board_url": self.web.url,
            },
            message_id=outbox.new_message_id("signin", support.id_domain),
            in_reply_to=None,
            references=[],
            dedupe_key=f"signin:{link.link_id}",
            now=now,
            extra={"from_name": support.name},
        )

    def _payload(self, token: str) -> tuple[str, str] | None:
        """The (address, link id) a token signs, if its signature is good and not too old."""
        try:
            data = self.serializer.loads(token, max_age=int(self.web.link_lifetime.total_seconds()))
        except BadSignature:  # SignatureExpired is one too
            return None
        if not isinstance(data, dict):
            return None
        return str(data.get("a", "")), str(data.get("l", ""))

    def is_well_signed(self, token: str) -> bool:
        """Whether a link looks usable (ours, in time, for an agent); it is not used up here."""
        payload = self._payload(token)
        return payload is not None and self.is_agent(payload[0])

    def redeem(self, token: str, now: datetime) -> str | None:
        """The agent a link signs in, using it up; None if forged, expired, used or no agent."""
        payload = self._payload(token)
        if payload is None:
            log.info("signin.link_refused", reason="bad or expired signature")
            return None
        address, link_id = payload
        if not self.is_agent(address):
            log.info("signin.link_refused", reason="not an agent")
            return None
        with self.sessions.begin() as s:
            used = signin_links.use(s, link_id, address, now)
        if not used:
            log.info("signin.link_refused", reason="used, expired or unknown")
            return None
        log.info("signin.signed_in", agent=address, method="link")
        return address
