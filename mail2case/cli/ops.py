"""Operator commands: ``customers list`` and the retention ``purge``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mail2case import app
from mail2case.cli import views
from mail2case.service.purge import purge
from storage.customer_counts import COUNTS, counts_by_customer

if TYPE_CHECKING:
    from ingest.triage.customers import CustomerRule
    from mail2case.config.settings import Config

CUSTOMER_COLUMNS = ("name", "plan", "timezone", "configured", "contacts", "cases", "open_cases")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``customers list`` and ``purge``."""
    c = sub.add_parser("customers", parents=[common], help="configured customers").add_subparsers(
        dest="customers_command", required=True, metavar="ACTION"
    )
    p = c.add_parser("list", parents=[common], help="customers with contacts and cases seen")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=customers_list)
    p = sub.add_parser(
        "purge",
        parents=[common],
        help="drop raw mail and attachment contents of closed cases past retention",
    )
    p.add_argument("--older-than", type=_days, metavar="DAYS", help="default: retention.raw_days")
    p.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=purge_command)


def _days(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of days >= 1 (got {text!r})")
    return int(text)


def customers_list(args: argparse.Namespace, config: Config) -> int:
    """``customers list [--json]``: each configured customer, then any seen but unconfigured."""
    engine, sessions = app.open_database(config)
    with sessions() as s:
        seen = counts_by_customer(s)
    engine.dispose()
    rows = [_customer_row(rule, seen.pop(rule.name, None)) for rule in config.customers.rules]
    rows += [_unconfigured_row(name, counts) for name, counts in sorted(seen.items())]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(views.table(rows, CUSTOMER_COLUMNS))
    return 0


def _customer_row(rule: CustomerRule, counts: dict[str, int] | None) -> dict[str, Any]:
    counts = counts or {}
    return {
        "name": rule.name,
        "plan": rule.plan,
        "timezone": rule.timezone,
        "paid_through": rule.paid_through.isoformat() if rule.paid_through else None,
        "addresses": sorted(rule.addresses),
        "domains": sorted(rule.domains),
        "configured": True,
        "contacts": counts.get("contacts", 0),
        "cases": counts.get("cases", 0),
        "open_cases": counts.get("open_cases", 0),
    }


def _unconfigured_row(name: str, counts: dict[str, int]) -> dict[str, Any]:
    # A customer removed from the config keeps its cases: show it, marked as such.
    row = {"name": name, "plan": "", "timezone": "", "paid_through": None}
    return row | {"addresses": [], "domains": [], "configured": False} | _counts(counts)


def _counts(counts: dict[str, int]) -> dict[str, int]:
    return {k: counts.get(k, 0) for k in COUNTS}


def purge_command(args: argparse.Namespace, config: Config) -> int:
    """``purge [--older-than DAYS] [--dry-run] [--json]``; 2 when no period is known."""
    days = args.older_than or config.retention.raw_days
    if days <= 0:
        print(
            "mail2case: purge: retention.raw_days is 0 (keep for ever); give --older-than DAYS",
            file=sys.stderr,
        )
        return 2
    engine, sessions = app.open_database(config)
    report = purge(
        sessions,
        older_than_days=days,
        now=datetime.now(UTC),
        attachments_dir=config.processing.attachments_dir,
        dry_run=args.dry_run,
    )
    engine.dispose()
    data = report.as_dict()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    verb = "would purge" if args.dry_run else "purged"
    print(
        f"{verb} {data['cases']} case(s) closed over {days} days ago: raw mail of "
        f"{data['inbound']} message(s) ({data['raw_bytes']} bytes), "
        f"{data['blobs']} attachment content(s) ({data['blob_bytes']} bytes)"
    )
    return 0
