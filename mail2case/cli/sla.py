"""CLI commands of the SLA engine: deadline arithmetic, a scheduler pass, running sla_clocks."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mail2case import app
from mail2case.cli import views
from sla.clocks import describe_remaining
from sla.deadlines import due_at, remaining
from sla.policy import Priority, describe_target
from storage import sla_clocks

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mail2case.config.settings import Config
    from sla.scheduler import Notice
    from sla.tracking import SlaContext

STATUS_COLUMNS = ("case_ref", "plan", "priority", "status", "clock", "due", "time_left")
STATUS_LIMIT = 10000  # an operator's screen, not a report; the query is indexed and ordered


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``sla deadline``, ``sla tick`` and ``sla status``."""
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
    p = sla.add_parser("tick", parents=[common], help="one scheduler pass: reminders, escalations")
    p.add_argument("--now", type=_instant, default=None, help="ISO 8601 (default: the real time)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=tick)
    p = sla.add_parser("status", parents=[common], help="running clocks, breached first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=status)


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


def tick(args: argparse.Namespace, config: Config) -> int:
    """``sla tick [--now ISO8601] [--json]``: queue what is due at that time, print it."""
    now = args.now or datetime.now(UTC)
    engine, sessions = app.open_database(config)
    notices = app.build_scheduler(config, sessions, app.team_calendar(config, now)).tick(now)
    engine.dispose()
    queued = [_notice_view(n) for n in notices if n.is_queued]
    if args.json:
        print(json.dumps({"now": views.iso(now), "queued": queued}, indent=2))
        return 0
    for n in queued:
        print(f"{n['kind']} case {n['case_ref']} {n['clock']} due {n['due']} -> {n['to']}")
    if not queued:
        print(f"{views.iso(now)}: nothing due")
    return 0


def _notice_view(notice: Notice) -> dict[str, Any]:
    return {
        "kind": notice.kind,
        "case_ref": notice.case_ref,
        "clock": notice.clock_kind,
        "due": views.iso(notice.due_at),
        "to": notice.to,
        "dedupe_key": notice.dedupe_key,
    }


def status(args: argparse.Namespace, config: Config) -> int:
    """``sla status [--json]``: each running clock of open cases, breached ones first."""
    now = datetime.now(UTC)
    context = app.sla_context(config, app.team_calendar(config, now))
    engine, sessions = app.open_database(config)
    with sessions() as s:
        rows = _status_rows(s, context, now)
    engine.dispose()
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(views.table(rows, STATUS_COLUMNS))
    return 0


def _status_rows(s: Session, context: SlaContext, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for clock, case in sla_clocks.running_on_open_cases(s, STATUS_LIMIT):
        plan = context.policy.plan(case.plan)
        left = remaining(now, clock.due_at, plan.clock, context.calendar_for(case.timezone))
        rows.append(
            {
                "case_ref": case.ref,
                "subject": case.subject,
                "plan": case.plan,
                "priority": case.priority,
                "status": case.status,
                "clock": clock.kind,
                "started": views.iso(clock.started_at),
                "due": views.iso(clock.due_at),
                "remind_at": views.iso(clock.remind_at),
                "seconds_left": int(left.total_seconds()),
                "time_left": describe_remaining(left),
                "breached": clock.due_at <= now,
            }
        )
    return rows
