"""The SLA report: compliance per plan and priority, breaches per day (SVG), backlog by age.

Pure: given the clocks due in the period, the open cases' ages and the time. A clock
due in the period was met when it ended (met) by its due time; breached when it ended
after it or still runs past it; a clock still running before its due time, or stopped
(the case went pending or was solved), is not counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

PRIORITIES = ("high", "medium", "low")
KINDS = ("first", "update")
AGE_BUCKETS = (
    ("under 1 day", timedelta(days=1)),
    ("1 to 3 days", timedelta(days=3)),
    ("3 to 7 days", timedelta(days=7)),
    ("7 to 30 days", timedelta(days=30)),
)
OLDEST_BUCKET = "30 days or more"


@dataclass(frozen=True)
class Compliance:
    """Met and breached targets of one plan, priority and kind of clock."""

    met: int = 0
    breached: int = 0

    @property
    def share(self) -> str:
        """Met as a percentage of those counted, or "-" when none were."""
        total = self.met + self.breached
        return f"{100 * self.met / total:.0f}%" if total else "-"


def outcome(state: str, due_at: datetime, ended_at: datetime | None, now: datetime) -> str | None:
    """Met, breached, or None for a clock not counted (running in time, or stopped)."""
    if state == "met":
        return "met" if ended_at is not None and ended_at <= due_at else "breached"
    if state == "running":
        return "breached" if due_at <= now else None
    return None


def compliance(
    clocks: Iterable[Any], plans: Sequence[str], now: datetime
) -> dict[tuple[str, str, str], Compliance]:
    """Per (plan, priority, kind): how many targets due in the period were met or breached."""
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for c in clocks:
        result = outcome(c.state, c.due_at, c.ended_at, now)
        if result is not None:
            counts[(c.plan, c.priority, c.kind, result)] += 1
    return {
        (plan, priority, kind): Compliance(
            counts[(plan, priority, kind, "met")], counts[(plan, priority, kind, "breached")]
        )
        for plan in plans
        for priority in PRIORITIES
        for kind in KINDS
    }


def breaches_per_day(clocks: Iterable[Any], since: date, until: date, now: datetime) -> list[int]:
    """Breached targets by the day they fell due, one count per day of [since, until)."""
    days = (until - since).days
    counts = [0] * days
    for c in clocks:
        if outcome(c.state, c.due_at, c.ended_at, now) == "breached":
            index = (c.due_at.date() - since).days
            if 0 <= index < days:
                counts[index] += 1
    return counts


def backlog_by_age(opened: Iterable[datetime], now: datetime) -> list[tuple[str, int]]:
    """Open cases counted by how long ago they opened."""
    counts: Counter[str] = Counter()
    for at in opened:
        age = now - at
        label = next((name for name, limit in AGE_BUCKETS if age < limit), OLDEST_BUCKET)
        counts[label] += 1
    return [(name, counts[name]) for name, _ in AGE_BUCKETS] + [
        (OLDEST_BUCKET, counts[OLDEST_BUCKET])
    ]


@dataclass(frozen=True)
class Bar:
    """One bar of the chart, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    day: str
    count: int


CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720.0, 160.0, 20.0


def chart_bars(counts: Sequence[int], since: date) -> tuple[list[Bar], int]:
    """The bars of the breaches-per-day chart, and the tallest count (the scale)."""
    top = max(counts, default=0) or 1
    slot = (CHART_WIDTH - 2 * CHART_PAD) / max(len(counts), 1)
    usable = CHART_HEIGHT - 2 * CHART_PAD
    bars = []
    for i, n in enumerate(counts):
        height = usable * n / top
        bars.append(
            Bar(
                x=CHART_PAD + i * slot + slot * 0.1,
                y=CHART_HEIGHT - CHART_PAD - height,
                width=slot * 0.8,
                height=height,
                day=(since + timedelta(days=i)).isoformat(),
                count=n,
            )
        )
    return bars, top
