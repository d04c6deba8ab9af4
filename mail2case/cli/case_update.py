"""CLI command ``cases update``: an operator changes status or priority, with who and why."""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mail2case import app
from mail2case.cli import views
from sla import tracking
from sla.clocks import Status
from sla.policy import Priority
from storage import cases

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mail2case.config.settings import Config
    from storage.models import Case


def add_parsers(actions: Any, common: argparse.ArgumentParser) -> None:
    """Register ``cases update`` among the ``cases`` actions that ``cases.add_parsers`` returns."""
    p = actions.add_parser("update", parents=[common], help="change status or priority")
    p.add_argument("ref", type=_ref)
    p.add_argument("--status", type=Status, choices=list(Status), default=None)
    p.add_argument("--priority", type=_priority, default=None, help="high, medium or low")
    p.add_argument("--reason", default="", help="why (required with --priority)")
    p.add_argument("--actor", default=None, help="who (default: cli:$USER)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cases_update)


def _ref(text: str) -> int:
    digits = text.strip().lstrip("[#").rstrip("]")
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"not a case reference: {text!r}")
    return int(digits)


def _priority(text: str) -> Priority:
    try:
        return Priority.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cases_update(args: argparse.Namespace, config: Config) -> int:
    """``cases update REF [--status S] [--priority P --reason TEXT] [--actor ADDR]``.

    Exit 2 for a usage error, 1 when there is no such case.
    """
    if args.status is None and args.priority is None:
        print("mail2case: cases update: give --status and/or --priority")
        return 2
    if args.priority is not None and not args.reason.strip():
        print("mail2case: cases update: --priority needs --reason (it is kept with the change)")
        return 2
    now = datetime.now(UTC)
    context = app.sla_context(config, app.team_calendar(config, now))
    engine, sessions = app.open_database(config)
    with sessions.begin() as s:
        case = cases.case_by_ref(s, args.ref)
        changed = None if case is None else _update(s, case, args, context, now)
        summary = None if case is None else views.case_summary(case, len(case.messages))
    engine.dispose()
    if summary is None or changed is None:
        print(f"mail2case: no case {args.ref}")
        return 1
    _report(args, summary, changed)
    return 0


def _update(
    s: Session,
    case: Case,
    args: argparse.Namespace,
    context: tracking.SlaContext,
    now: datetime,
) -> list[str]:
    actor, reason = args.actor or _default_actor(), args.reason.strip()
    changed = []
    if args.priority is not None and tracking.change_priority(
        s, case, args.priority, now, actor=actor, reason=reason, context=context
    ):
        changed.append("priority")
    if args.status is not None and tracking.change_status(
        s, case, args.status, now, actor=actor, reason=reason, context=context
    ):
        changed.append("status")
    return changed


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in some containers
        return "cli"


def _report(args: argparse.Namespace, summary: dict[str, Any], changed: list[str]) -> None:
    if args.json:
        print(json.dumps(summary | {"changed": changed}, indent=2, ensure_ascii=False))
        return
    what = ", ".join(changed) or "nothing (already so)"
    print(
        f"case {summary['ref']}: changed {what}; status {summary['status']}, "
        f"priority {summary['priority']}, next update due {summary['next_update_due'] or '-'}"
    )
