"""OAuth2 access tokens for IMAP (XOAUTH2): read afresh per connect, expiry watched."""

from __future__ import annotations

import base64
import binascii
import json
import shlex
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ingest.sources.mailbox import MailboxLoginError

if TYPE_CHECKING:
    from ingest.sources.imap_settings import ImapSettings

log = structlog.get_logger("mail2case.imap")

TOKEN_EXPIRY_WARNING = timedelta(minutes=10)


def read_oauth2_token(settings: ImapSettings) -> str:
    """The access token from ``oauth2_token_file`` or ``oauth2_token_command``'s stdout.

    Raises:
        MailboxLoginError: the file or command gave no token (the reason says why).
    """
    try:
        if settings.oauth2_token_file:
            token = Path(settings.oauth2_token_file).read_text(encoding="utf-8").strip()
        else:
            token = _token_from_command(settings.oauth2_token_command)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MailboxLoginError(f"oauth2 token: {exc}") from exc
    if not token:
        raise MailboxLoginError("oauth2 token: empty")
    return token


def _token_from_command(command: str) -> str:
    # The command is the operator's own, from the config file; no shell is involved.
    proc = subprocess.run(  # noqa: S603 - argv from trusted config, no shell
        shlex.split(command), capture_output=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip()[-200:]
        raise MailboxLoginError(f"oauth2_token_command exited {proc.returncode}: {detail}")
    return proc.stdout.decode("utf-8", "replace").strip()


def token_expires_at(token: str) -> datetime | None:
    """The ``exp`` claim of a JWT access token (Microsoft 365), or None (Gmail's are opaque)."""
    parts = token.split(".")
    if len(parts) != 3:  # noqa: PLR2004 - header.payload.signature
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(int(payload["exp"]), UTC)
    except (ValueError, KeyError, TypeError, binascii.Error, OverflowError):
        return None


class OAuth2TokenSource:
    """Reads the token afresh on each connect; refuses an expired one, warns before expiry."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.expires_at: datetime | None = None

    def __call__(self) -> str:
        """The current token."""
        token = read_oauth2_token(self.settings)
        self.expires_at = token_expires_at(token)
        now = datetime.now(UTC)
        if self.expires_at is not None and self.expires_at <= now:
            raise MailboxLoginError(f"oauth2 token expired at {self.expires_at.isoformat()}")
        if self.expires_at is not None and self.expires_at - now < TOKEN_EXPIRY_WARNING:
            log.warning("imap.oauth2_token_expiring", expires_at=self.expires_at.isoformat())
        return token
