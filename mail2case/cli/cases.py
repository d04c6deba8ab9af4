"""CLI commands that read and repair the queues: cases, quarantine, outbox, status."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from mail2case import app
from mail2case.cli import views
from storage import cases, inbound, outbox
from storage.statuses import InboundStatus, OutboxStatus
from storage.write_queue import wal_bytes

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from mail2case.config.settings import Config

CASE_COLUMNS = ("ref", "priority", "plan", "status", "customer", "first_response_due", "subject")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> Any:
    """Register ``cases``, ``quarantine``, ``outbox`` and ``status``.

    Returns:
        The ``cases`` actions, to which ``mail2case.cli.case_update`` adds ``update``.
    """
    c = sub.add_parser("cases", parents=[common], help="list and show cases").add_subparsers(
        dest="cases_command", required=True, metavar="ACTION"
    )
    p = c.add_parser("list", parents=[common], help="the queue, in queue order")
    p.add_argument("--open", action="store_true", help="only open and pending cases")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cases_list)
    p = c.add_parser("show", parents=[common], help="one case with messages and events")
    p.add_argument("ref", type=_ref)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cases_show)
    for group in _ROW_QUEUES:
        _add_row_queue(sub, common, group)
    p = sub.add_parser("status", parents=[common], help="how far behind the daemon is")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=status)
    return c


class _RowQueue(NamedTuple):
    """A command group over a queue of rows: ``list``, and one action on a row by id."""

    name: str
    help: str
    dest: str
    listing: Callable[[argparse.Namespace, Config], int]
    action: str
    action_help: str
    act: Callable[[argparse.Namespace, Config], int]


def _add_row_queue(sub: Any, common: argparse.ArgumentParser, group: _RowQueue) -> None:
    """Register ``group``: its ``list`` (with ``--json``) and its action taking a row id."""
    actions = sub.add_parser(group.name, parents=[common], help=group.help).add_subparsers(
        dest=group.dest, required=True, metavar="ACTION"
    )
    p = actions.add_parser("list", parents=[common])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=group.listing)
    p = actions.add_parser(group.action, parents=[common], help=group.action_help)
    p.add_argument("id", type=int)
    p.set_defaults(func=group.act)


def _ref(text: str) -> int:
    digits = text.strip().lstrip("[#").rstrip("]")
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"not a case reference: {text!r}")
    return int(digits)


def _emit(args: argparse.Namespace, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(views.table(rows, columns))


def cases_list(args: argparse.Namespace, config: Config) -> int:
    """``cases list [--open] [--json]``."""
    engine, sessions = app.open_database(config)
    with sessions() as s:
        rows = [views.case_summary(c, n) for c, n in cases.list_cases(s, open_only=args.open)]
    engine.dispose()
    _emit(args, rows, CASE_COLUMNS)
    return 0


def cases_show(args: argparse.Namespace, config: Config) -> int:
    """``cases show REF [--json]``; exit 1 when there is no such case."""
    engine, sessions = app.open_database(config)
    with sessions() as s:
        case = cases.case_detail(s, args.ref)
        detail = views.case_detail(case) if case else None
    engine.dispose()
    if detail is None:
        print(f"mail2case: no case {args.ref}")
        return 1
    if args.json:
        print(json.dumps(detail, indent=2, ensure_ascii=False))
        return 0
    print(_case_text(detail))
    return 0


def _case_text(d: dict[str, Any]) -> str:
    lines = [
        f"[{d['ref']}] {d['subject']}",
        (
            f"status {d['status']}, priority {d['priority']} "
            f"({d['priority_reason']}), plan {d['plan']}, customer {d['customer']}"
        ),
        f"opened {d['opened_at']}, first response due {d['first_response_due']}",
    ]
    for m in d["messages"]:
        lines += [
            "",
            f"--- {m['direction']} {m['kind']} {m['at']} from {m['from']}: {m['subject']}",
            m["text"].strip(),
        ]
        lines += [
            f"  [attachment] {a['filename']} ({a['content_type']}, {a['size']} bytes)"
            for a in m["attachments"]
        ]
    lines += ["", "events:"] + [
        f"  {e['at']} {e['kind']} {e['actor']} {e['detail']}" for e in d["events"]
    ]
    return "\n".join(lines)


def quarantine_list(args: argparse.Namespace, config: Config) -> int:
    """``quarantine list [--json]``."""
    engine, sessions = app.open_database(config)
    with sessions() as s:
        rows = [views.inbound_view(r) for r in inbound.quarantined(s)]
    engine.dispose()
    _emit(args, rows, ("id", "received_at", "source", "mail_from", "size", "reason"))
    return 0


def quarantine_reprocess(args: argparse.Namespace, config: Config) -> int:
    """``quarantine reprocess ID``: back into the queue, then processed at once."""
    engine, sessions = app.open_database(config)
    with sessions.begin() as s:
        ok = inbound.requeue(s, args.id)
    if ok:
        outcome = app.build_processor(config, sessions).handle(args.id, datetime.now(UTC))
        print(
            f"message {args.id}: {outcome.status if outcome else 'queued'}"
            + (f" ({outcome.reason})" if outcome and outcome.reason else "")
        )
    else:
        print(f"mail2case: message {args.id} is not quarantined or suppressed")
    engine.dispose()
    return 0 if ok else 1


def outbox_list(args: argparse.Namespace, config: Config) -> int:
    """``outbox list [--json]``."""
    engine, sessions = app.open_database(config)
    with sessions() as s:
        rows = [views.outbox_view(r, ref) for r, ref in outbox.rows_with_case_refs(s)]
    engine.dispose()
    _emit(args, rows, ("id", "kind", "status", "attempts", "case_ref", "to", "subject"))
    return 0


def outbox_retry(args: argparse.Namespace, config: Config) -> int:
    """``outbox retry ID``: a failed row goes back to the queue, due now."""
    engine, sessions = app.open_database(config)
    with sessions.begin() as s:
        ok = outbox.retry_now(s, args.id, datetime.now(UTC))
    engine.dispose()
    print(f"outbox {args.id}: queued again" if ok else f"mail2case: outbox {args.id} is not failed")
    return 0 if ok else 1


def status(args: argparse.Namespace, config: Config) -> int:
    """``status [--json]``: counts of inbound, outbox and cases."""
    engine, sessions = app.open_database(config)
    with sessions() as s:
        data = _status_counts(s)
    wal = wal_bytes(engine)
    if wal is not None:  # SQLite: how much the write-ahead log holds on disk
        data["database"] = {"wal_bytes": wal}
    engine.dispose()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for section, counts in data.items():
            print(f"{section}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _status_counts(s: Session) -> dict[str, dict[str, int]]:
    raw = inbound.status_counts(s)
    settled = sum(v for k, v in raw.items() if k != InboundStatus.RECEIVED)
    box = outbox.counts(s)
    by_status = cases.status_counts(s)
    return {
        "inbound": {
            "received": sum(raw.values()),
            "processed": settled,
            "pending": raw.get(InboundStatus.RECEIVED, 0),
            "quarantined": raw.get(InboundStatus.QUARANTINED, 0),
            "duplicate": raw.get(InboundStatus.DUPLICATE, 0),
            "suppressed": raw.get(InboundStatus.SUPPRESSED, 0),
        },
        "outbox": {
            "queued": box.get(OutboxStatus.QUEUED, 0),
            "sent": box.get(OutboxStatus.SENT, 0),
            "failed": box.get(OutboxStatus.FAILED, 0),
        },
        "cases": {
            "open": by_status.get("open", 0),
            "pending": by_status.get("pending", 0),
            "solved": by_status.get("solved", 0),
            "closed": by_status.get("closed", 0),
        },
    }


# After the commands they name; read when ``add_parsers`` runs.
_ROW_QUEUES = (
    _RowQueue(
        "quarantine",
        "messages set aside",
        "q_command",
        quarantine_list,
        "reprocess",
        "queue a quarantined message again",
        quarantine_reprocess,
    ),
    _RowQueue(
        "outbox",
        "outgoing mail",
        "o_command",
        outbox_list,
        "retry",
        "send a failed row again",
        outbox_retry,
    ),
)
