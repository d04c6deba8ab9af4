"""How cases, messages and outbox rows look on the CLI: JSON objects and text tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from storage.models import Case, CaseEvent, Inbound, Message, Outbox


CELL_WIDTH = 60


def iso(at: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, or None."""
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def case_summary(case: Case, message_count: int) -> dict[str, Any]:
    """The fields of ``cases list --json`` (others' checks rely on these names)."""
    return {
        "ref": case.ref,
        "subject": case.subject,
        "status": case.status,
        "priority": case.priority,
        "priority_reason": case.priority_reason,
        "customer_priority": case.customer_priority,
        "plan": case.plan,
        "customer": case.customer_address,
        "customer_name": case.customer.name if case.customer else None,
        "owner": case.owner,
        "opened_at": iso(case.opened_at),
        "first_response_due": iso(case.first_response_due),
        "first_responded_at": iso(case.first_responded_at),
        "next_update_due": iso(case.next_update_due),
        "message_count": message_count,
    }


def message_view(msg: Message) -> dict[str, Any]:
    """One message of ``cases show --json``."""
    return {
        "direction": msg.direction,
        "kind": msg.kind,
        "from": msg.from_addr,
        "from_name": msg.from_name,
        "to": list(msg.to_addrs),
        "cc": list(msg.cc_addrs),
        "subject": msg.subject,
        "message_id": msg.message_id,
        "at": iso(msg.at),
        "text": msg.text,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in msg.attachments
        ],
    }


def event_view(event: CaseEvent) -> dict[str, Any]:
    """One audit event."""
    return {
        "at": iso(event.at),
        "kind": event.kind,
        "actor": event.actor,
        "detail": event.detail,
        "data": event.data,
    }


def case_detail(case: Case) -> dict[str, Any]:
    """The object of ``cases show --json``."""
    out = case_summary(case, len(case.messages))
    out["participants"] = list(case.participants)
    out["timezone"] = case.timezone
    out["messages"] = [message_view(m) for m in case.messages]
    out["events"] = [event_view(e) for e in case.events]
    return out


def outbox_view(row: Outbox, case_ref: int | None) -> dict[str, Any]:
    """One row of ``outbox list --json``."""
    return {
        "id": row.id,
        "kind": row.kind,
        "to": list(row.to_addrs),
        "cc": list(row.cc_addrs or []),
        "from_name": row.from_name,
        "subject": row.subject,
        "status": row.status,
        "case_ref": case_ref,
        "dedupe_key": row.dedupe_key,
        "attempts": row.attempts,
        "message_id": row.message_id,
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "next_attempt_at": iso(row.next_attempt_at),
        "last_error": row.last_error,
    }


def inbound_view(row: Inbound) -> dict[str, Any]:
    """One row of ``quarantine list --json``."""
    return {
        "id": row.id,
        "source": row.source,
        "received_at": iso(row.received_at),
        "mail_from": row.mail_from,
        "size": row.size,
        "status": row.status,
        "reason": row.reason,
    }


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table of ``columns``."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    text = "-" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 3] + "..."
