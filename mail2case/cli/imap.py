"""``mail2case imap check``: log in to each mailbox, list folders and the work waiting."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ingest.sources.imap import TOKEN_EXPIRY_WARNING, OAuth2TokenSource
from ingest.sources.mailbox import ImapClientMailbox, MailboxError

if TYPE_CHECKING:
    import argparse

    from ingest.sources.imap_settings import ImapSettings
    from mail2case.config.settings import Config


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
