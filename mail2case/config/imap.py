"""The ``[[imap]]`` tables of the configuration, validated into ``ImapSettings``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ingest.sources.imap_settings import ImapSettings

if TYPE_CHECKING:
    from mail2case.config.reader import Section

CREDENTIAL_KEYS = (
    "password",
    "password_file",
    "password_env",
    "oauth2_token_file",
    "oauth2_token_command",
)
# RFC 2177: a server may drop a client idle for 30 minutes; 29 is the longest safe IDLE.
MAX_IDLE_SECONDS = 29 * 60


def read_imap_settings(root: Section) -> tuple[ImapSettings, ...]:
    """Every ``[[imap]]`` mailbox, validated; problems are gathered in ``root``."""
    tables = root.tables("imap")
    mailboxes = tuple(_imap(t) for t in tables)
    seen: set[str] = set()
    for table, box in zip(tables, mailboxes, strict=True):
        if box.name in seen:
            table.problem("name", "must be unique among the [[imap]] mailboxes", box.name)
        seen.add(box.name)
    return mailboxes


def _imap(s: Section) -> ImapSettings:
    d = ImapSettings()
    tls = s.choice("tls", d.tls, ("ssl", "starttls", "none"))
    folder = _required(s, "folder", d.folder)
    processed = s.choice("processed", d.processed, ("move", "flag"))
    processed_folder = s.str("processed_folder", d.processed_folder)
    if processed == "move" and processed_folder in {"", folder}:
        s.problem("processed_folder", "must name a folder other than folder", processed_folder)
    return ImapSettings(
        name=s.str("name"),
        host=_required(s, "host"),
        port=s.int("port", 993 if tls == "ssl" else 143, 1, 65535),
        tls=tls,
        tls_verify=s.bool("tls_verify", default=d.tls_verify),
        tls_ca_file=_existing_file(s, "tls_ca_file"),
        username=_required(s, "username"),
        password=_credentials(s),
        oauth2_token_file=s.str("oauth2_token_file"),
        oauth2_token_command=s.str("oauth2_token_command"),
        folder=folder,
        processed=processed,
        processed_folder=processed_folder,
        idle=s.bool("idle", default=d.idle),
        poll_interval_seconds=s.number("poll_interval_seconds", d.poll_interval_seconds, 0.05),
        max_message_size=s.int("max_message_size", d.max_message_size, 1024, 2**31),
        batch_size=s.int("batch_size", d.batch_size, 1, 10000),
        idle_timeout_seconds=s.number(
            "idle_timeout_seconds", d.idle_timeout_seconds, 1, MAX_IDLE_SECONDS
        ),
        lease_seconds=s.number("lease_seconds", d.lease_seconds, 1, 86400),
    )


def _required(s: Section, name: str, default: str = "") -> str:
    value = s.str(name, default)
    if not value:
        s.problem(name, "must be set")
    return value


def _existing_file(s: Section, name: str) -> str:
    value = s.str(name)
    if value and not Path(value).is_file():
        s.problem(name, "no such file", value)
    return value


def _credentials(s: Section) -> str:
    """The password (from password, password_file or password_env), checking exclusivity."""
    given = [k for k in CREDENTIAL_KEYS if s.data.get(k)]
    password = s.secret("password")  # reports a clash among the password_* keys itself
    if not given:
        s.problem("password", f"set one of {', '.join(CREDENTIAL_KEYS)}")
    elif len(given) > 1 and any(k.startswith("oauth2") for k in given):
        s.problem("password", f"set only one of {', '.join(given)}")
    return password
