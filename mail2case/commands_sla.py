"""CLI commands of the SLA engine: deadline arithmetic on the configured policy."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mail2case import app
from sla.deadlines import due_at
from sla.policy import Priority, describe_target

if TYPE_CHECKING:
    from mail2case.config import Config


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``sla deadline``."""
    sla = sub.add_parser("sla", parents=[common], help="SLA clocks").add_subparsers(
        dest="sla_command", required=True, metavar="ACTION"
    )
    p = sla.add_parser("deadline", parents=[common], help="when a target falls due")
    p.add_argument("--plan", required=True)
    p.add_argument("--priority", required=True, type=_priority, help="high, medium or low")
    p.add_argument("--kind", required=True, choices=("first", "update"))
    p.add_argument(
        "--start", required=True, type=_instant, help="ISO 8601 with an offset (UTC if none)"
    )
    p.add_argument("--tz", required=True, type=_zone, help="the customer's IANA time zone")
    p.add_argument(
        "--holiday",
        action="append",
        type=date.fromisoformat,
        default=None,
        help="YYYY-MM-DD; given at least once, these replace the configured holidays",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=deadline)


def _priority(text: str) -> Priority:
    try:
        return Priority.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _instant(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _zone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r}") from exc


def deadline(args: argparse.Namespace, config: Config) -> int:
    """``sla deadline``: prints the due time (JSON with --json)."""
    try:
        plan = config.policy.plan(args.plan)
    except ValueError as exc:
        print(f"mail2case: {exc}")
        return 2
    calendar = dataclasses.replace(app.team_calendar(config, args.start), tz=args.tz)
    if args.holiday is not None:
        calendar = dataclasses.replace(calendar, holidays=frozenset(args.holiday))
    target = plan.target(args.kind, args.priority)
    due = due_at(args.start, target, plan.clock, calendar)
    result = {
        "due": due.isoformat().replace("+00:00", "Z"),
        "due_local": due.astimezone(args.tz).isoformat(),
        "start": args.start.isoformat().replace("+00:00", "Z"),
        "plan": plan.name,
        "clock": plan.clock.value,
        "priority": args.priority.value,
        "kind": args.kind,
        "target_hours": target.total_seconds() / 3600,
        "target_words": describe_target(target, plan.clock),
        "timezone": args.tz.key,
    }
    print(
        json.dumps(result, indent=2) if args.json else f"{result['due']} ({result['target_words']})"
    )
    return 0
