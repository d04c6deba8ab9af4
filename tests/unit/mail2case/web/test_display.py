"""How the board shows deadlines: risk colour, countdown text, a clock's outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from mail2case.web.display import clock_view, countdown, queue_row, risk

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due", "remind", "expected"),
    [
        (None, None, "none"),
        (NOW - timedelta(seconds=1), NOW - timedelta(hours=1), "breached"),
        (NOW, None, "breached"),
        (NOW + timedelta(hours=1), NOW - timedelta(minutes=1), "warning"),
        (NOW + timedelta(hours=1), NOW + timedelta(minutes=1), "fine"),
        (NOW + timedelta(hours=1), None, "fine"),
    ],
)
def test_risk(due: datetime | None, remind: datetime | None, expected: str) -> None:
    """Past due is breached, past the reminder is a warning, else fine; no clock is none."""
    assert risk(due, remind, NOW) == expected


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0m 00s"),
        (754, "12m 34s"),
        (3 * 3600 + 5 * 60 + 59, "3h 05m"),
        (2 * 86400 + 4 * 3600 + 1, "2d 4h"),
        (-(3600 + 600), "-1h 10m"),
    ],
)
def test_countdown(seconds: float, shown: str) -> None:
    """Days and hours far off, minutes and seconds near; negative once past (as board.js)."""
    assert countdown(seconds) == shown


def test_queue_row_shows_the_claim_only_when_it_differs() -> None:
    """The customer's own priority appears beside ours only when they disagree."""
    row = {
        "ref": 1000,
        "subject": "",
        "customer_address": "a@b.example",
        "customer_name": None,
        "plan": "premier",
        "priority": "high",
        "customer_priority": "high",
        "status": "open",
        "owner": None,
        "opened_at": NOW,
        "due_at": NOW + timedelta(minutes=5),
        "remind_at": NOW - timedelta(minutes=1),
    }
    same = queue_row(row, NOW)
    assert (same.claim, same.subject, same.customer, same.risk) == (
        "",
        "(no subject)",
        "a@b.example",
        "warning",
    )
    assert same.due == "2026-12-07T12:05:00Z"
    assert queue_row(row | {"customer_priority": "low"}, NOW).claim == "low"


@pytest.mark.parametrize(
    ("state", "ended", "due", "outcome"),
    [
        ("running", None, NOW + timedelta(hours=1), "running"),
        ("running", None, NOW - timedelta(hours=1), "breached"),
        ("met", NOW - timedelta(hours=2), NOW - timedelta(hours=1), "met"),
        ("met", NOW - timedelta(minutes=30), NOW - timedelta(hours=1), "breached"),
        ("stopped", NOW, NOW + timedelta(hours=1), "stopped"),
    ],
)
def test_clock_outcome(state: str, ended: datetime | None, due: datetime, outcome: str) -> None:
    """A clock is met when it ended in time, breached when it ended (or runs) past due."""
    clock = SimpleNamespace(
        kind="first", state=state, started_at=NOW - timedelta(hours=3), due_at=due, ended_at=ended
    )
    view = clock_view(clock, NOW)
    assert view["outcome"] == outcome
    assert bool(view["due_iso"]) is (state == "running")
