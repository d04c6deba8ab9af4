"""The SLA report's arithmetic: compliance, breaches per day, backlog by age, chart bars."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from mail2case.web.report import (
    backlog_by_age,
    breaches_per_day,
    chart_bars,
    compliance,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def clock(where: str, kind: str, state: str, due: datetime, ended: Any) -> Any:
    """A row of ``storage.board.clocks_due_between``; ``where`` is "plan/priority"."""
    plan, _, priority = where.partition("/")
    return SimpleNamespace(
        plan=plan, priority=priority, kind=kind, state=state, due_at=due, ended_at=ended
    )


CLOCKS = [
    clock("premier/high", "first", "met", NOW - timedelta(days=1), NOW - timedelta(days=2)),
    clock("premier/high", "first", "met", NOW - timedelta(days=1), NOW),  # late
    clock("premier/high", "first", "running", NOW - timedelta(hours=1), None),  # late
    clock("premier/high", "first", "running", NOW + timedelta(hours=1), None),  # in time
    clock("standard/low", "update", "stopped", NOW - timedelta(days=3), NOW),
]


def test_compliance_counts_met_and_breached_per_plan_priority_and_kind() -> None:
    """Met in time, ended late or running late; running in time and stopped do not count."""
    table = compliance(CLOCKS, ["premier", "standard"], NOW)
    first = table[("premier", "high", "first")]
    assert (first.met, first.breached, first.share) == (1, 2, "33%")
    assert table[("standard", "low", "update")].share == "-"
    assert len(table) == 2 * 3 * 2


def test_breaches_fall_on_the_day_they_were_due() -> None:
    """Each breached clock counts on its due day; days outside the period are dropped."""
    since = (NOW - timedelta(days=2)).date()
    counts = breaches_per_day(CLOCKS, since, since + timedelta(days=3), NOW)
    assert counts == [0, 1, 1]


def test_backlog_by_age_buckets() -> None:
    """Open cases counted by how long ago they opened, every bucket listed."""
    ages = [NOW - timedelta(hours=2), NOW - timedelta(days=2), NOW - timedelta(days=40)]
    assert backlog_by_age(ages, NOW) == [
        ("under 1 day", 1),
        ("1 to 3 days", 1),
        ("3 to 7 days", 0),
        ("7 to 30 days", 0),
        ("30 days or more", 1),
    ]


def test_chart_bars_scale_to_the_tallest_day() -> None:
    """The tallest bar fills the chart's height; an empty day has no height."""
    bars, top = chart_bars([0, 2, 4], date(2026, 12, 1))
    assert top == 4
    assert bars[0].height == 0
    assert bars[2].height == 2 * bars[1].height
    assert [b.day for b in bars] == ["2026-12-01", "2026-12-02", "2026-12-03"]
