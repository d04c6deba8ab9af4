"""IMAP wiring: ``[[imap]]`` settings from TOML, one poller per mailbox, ``imap check``."""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.sources.imap import TOKEN_EXPIRY_WARNING, ImapSettings, MailboxPoller, OAuth2TokenSource
from ingest.sources.mailbox import ImapClientMailbox, MailboxError

if TYPE_CHECKING:
    import argparse
    import asyncio
    from collections.abc import Callable, Coroutine

    from sqlalchemy.orm import Session, sessionmaker

    from ingest.sources.mailbox import Mailbox
    from mail2case.config import Config
    from mail2case.config_reader import Section

    Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

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
    # Unique per process, so a restarted instance is a new owner that waits out the old lease
    # unless the old one released it on a clean stop.
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return [MailboxPoller(s, mailbox_factory(s), sessions, wake, owner).run for s in config.imap]


# --- ``mail2case imap check`` ----------------------------------------------------------


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``imap check``."""
    imap = sub.add_parser("imap", parents=[common], help="IMAP mailboxes").add_subparsers(
        dest="imap_command", required=True, metavar="ACTION"
    )
    p = imap.add_parser(
        "check", parents=[common], help="log in to each mailbox; list folders and unread work"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=imap_check)


def imap_check(args: argparse.Namespace, config: Config) -> int:
    """``imap check [--json]``: 0 when every mailbox answers, else 2 with the reasons."""
    if not config.imap:
        sys.stderr.write("mail2case: imap check: no [[imap]] mailbox is configured\n")
        return 2
    reports = [check_mailbox(s) for s in config.imap]
    if args.json:
        sys.stdout.write(json.dumps(reports, indent=2) + "\n")
    else:
        sys.stdout.write("\n\n".join(_report_text(r) for r in reports) + "\n")
    for report in reports:
        if report["error"]:
            sys.stderr.write(f"mail2case: imap check: {report['name']}: {report['error']}\n")
    return 2 if any(r["error"] for r in reports) else 0


def check_mailbox(settings: ImapSettings) -> dict[str, Any]:
    """Log in, list the folders and count the messages not yet processed."""
    token = OAuth2TokenSource(settings) if settings.uses_oauth2 else None
    box = ImapClientMailbox(settings, token, timeout=30)
    report: dict[str, Any] = {
        "name": settings.name,
        "server": f"{settings.host}:{settings.port} ({settings.tls})",
        "username": settings.username,
        "folder": settings.folder,
        "processed": settings.processed,
        "folders": [],
        "unprocessed": None,
        "token_expires_at": None,
        "warning": None,
        "error": None,
    }
    try:
        box.connect()
        report["folders"] = box.folders()
        box.select(settings.folder)
        report["unprocessed"] = len(box.unprocessed(0))
    except MailboxError as exc:
        report["error"] = exc.reason
    finally:
        box.logout()
    if token is not None and token.expires_at is not None:
        _token_report(report, token.expires_at)
    return report


def _token_report(report: dict[str, Any], expires_at: datetime) -> None:
    report["token_expires_at"] = expires_at.isoformat()
    left = expires_at - datetime.now(UTC)
    if left < TOKEN_EXPIRY_WARNING and not report["error"]:
        report["warning"] = f"oauth2 token expires in {max(int(left.total_seconds()), 0)} s"


def _report_text(r: dict[str, Any]) -> str:
    lines = [f"{r['name']}: {r['username']} at {r['server']}, folder {r['folder']}"]
    if r["folders"]:
        lines.append(f"  folders: {', '.join(r['folders'])}")
    if r["unprocessed"] is not None:
        lines.append(f"  unprocessed: {r['unprocessed']} (processed by: {r['processed']})")
    if r["token_expires_at"]:
        lines.append(f"  oauth2 token expires at {r['token_expires_at']}")
    if r["warning"]:
        lines.append(f"  warning: {r['warning']}")
    lines.append(f"  error: {r['error']}" if r["error"] else "  ok")
    return "\n".join(lines)
