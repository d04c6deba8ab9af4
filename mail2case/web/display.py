"""How the board shows a case: risk colour, countdown, customer; pure, given the time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

BREACHED, WARNING, FINE, NO_CLOCK = "breached", "warning", "fine", "none"
MINUTE, HOUR, DAY = 60, 3600, 86400


def risk(due_at: datetime | None, remind_at: datetime | None, now: datetime) -> str:
    """Breached (past due), warning (past the reminder share), fine, or none (no clock)."""
    if due_at is None:
        return NO_CLOCK
    if due_at <= now:
        return BREACHED
    if remind_at is not None and remind_at <= now:
        return WARNING
    return FINE


def countdown(seconds: float) -> str:
    """Time to a deadline as the board shows it: "2d 4h", "3h 05m", "12m 30s", "-1h 10m"."""
    sign = "-" if seconds < 0 else ""
    left = int(abs(seconds))
    days, rest = divmod(left, DAY)
    hours, rest = divmod(rest, HOUR)
    minutes, secs = divmod(rest, MINUTE)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    return f"{sign}{minutes}m {secs:02d}s"


def iso(at: datetime | None) -> str:
    """ISO 8601 in UTC with a Z (what the countdown script reads), or ""."""
    return "" if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def shown_time(at: datetime | None) -> str:
    """A time for people: "2026-12-07 14:05 UTC", or "-"."""
    return "-" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One row of the queue as the template shows it.

    Attributes rather than a dict: Jinja tries ``getattr`` first, and over thousands of
    rows the failed lookups on a dict cost more than the rest of the rendering.
    """

    ref: int
    subject: str
    customer: str
    customer_address: str
    plan: str
    priority: str
    claim: str  # the customer's own priority, when it differs
    status: str
    owner: str
    due: str  # ISO 8601 UTC, read by the countdown script
    due_shown: str
    countdown: str
    risk: str


def queue_row(row: Mapping[Any, Any], now: datetime) -> QueueRow:
    """One queue row for the template, from :func:`storage.board.open_queue`'s columns."""
    due, remind = row["due_at"], row["remind_at"]
    claim = row["customer_priority"]
    return QueueRow(
        ref=row["ref"],
        subject=row["subject"] or "(no subject)",
        customer=row["customer_name"] or row["customer_address"],
        customer_address=row["customer_address"],
        plan=row["plan"],
        priority=row["priority"],
        claim=claim if claim and claim != row["priority"] else "",
        status=row["status"],
        owner=row["owner"] or "",
        due=iso(due),
        due_shown=shown_time(due),
        countdown="" if due is None else countdown((due - now).total_seconds()),
        risk=risk(due, remind, now),
    )


def clock_view(clock: Any, now: datetime) -> dict[str, Any]:
    """One SLA clock of a case: start, due, state, and met or breached."""
    ended = clock.ended_at
    late = (ended or now) > clock.due_at
    if clock.state == "running":
        outcome = BREACHED if late else "running"
    elif clock.state == "met":
        outcome = BREACHED if late else "met"
    else:
        outcome = "stopped"
    return {
        "kind": "first response" if clock.kind == "first" else "update",
        "state": clock.state,
        "started": shown_time(clock.started_at),
        "due": shown_time(clock.due_at),
        "due_iso": iso(clock.due_at) if clock.state == "running" else "",
        "ended": shown_time(ended),
        "outcome": outcome,
    }
