"""``mail2case explain``: how the daemon would treat message files, and why; stores nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.analysis.core import prioritise
from ingest.errors import ParseError
from ingest.mime.parse import parse_message
from ingest.triage.classify import classify_delivery
from mail2case import app

if TYPE_CHECKING:
    import argparse

    from ingest.settings import ProcessSettings
    from mail2case.config.settings import Config


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``explain FILE... [--json]``."""
    p = sub.add_parser(
        "explain", parents=[common], help="classify message files without storing them"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="RFC 5322 message files; - for stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=explain)


def explain(args: argparse.Namespace, config: Config) -> int:
    """Print one verdict per file; a file that cannot be read or parsed still gets its line."""
    model = app.current_priority_model(config).model
    settings = app.process_settings(config, app.team_calendar(config), model)
    for name in args.files:
        verdict = explain_one(name, settings)
        if args.json:
            print(json.dumps(verdict, ensure_ascii=False))
        else:
            print(_text_line(verdict))
    return 0


def explain_one(name: str, settings: ProcessSettings) -> dict[str, Any]:
    """The verdict for one file (``-`` is stdin)."""
    out: dict[str, Any] = {
        "file": name,
        "kind": None,
        "reason": "",
        "priority": None,
        "customer_priority": None,
        "priority_reason": None,
        "priority_confidence": None,
    }
    try:
        raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        mail = parse_message(raw, max_parts=settings.max_parts)
    except OSError as exc:
        out["reason"] = f"cannot read: {exc.strerror or exc}"
        return out
    except ParseError as exc:
        out["reason"] = f"parse error: {exc.reason} (would be quarantined)"
        return out
    verdict = classify_delivery(mail, settings.classify)
    decision = prioritise(mail, settings.analysis)
    out.update(
        {
            "kind": verdict.kind.value,
            "reason": verdict.reason,
            "priority": decision.priority.value,
            "customer_priority": decision.customer_priority.value
            if decision.customer_priority
            else None,
            "priority_reason": decision.reason,
            "priority_confidence": None
            if decision.confidence is None
            else round(decision.confidence, 3),
            "would_acknowledge": not verdict.is_automatic and verdict.kind.value == "customer",
            "subject": mail.subject,
            "from": mail.from_.addr if mail.from_ else None,
            "message_id": mail.message_id,
        }
    )
    if verdict.bounce is not None:
        b = verdict.bounce
        out["bounce"] = {
            "recipient": b.recipient,
            "status": b.status,
            "diagnostic": b.diagnostic,
            "action": b.action,
            "is_permanent": b.is_permanent,
        }
    return out


def _text_line(v: dict[str, Any]) -> str:
    if v["kind"] is None:
        return f"{v['file']}: {v['reason']}"
    return (
        f"{v['file']}: {v['kind']} ({v['reason']}); priority {v['priority']}"
        f" ({v['priority_reason']})"
    )
