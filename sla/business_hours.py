"""Business-hours arithmetic in one time zone: opening times, holidays and DST."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays as holiday_data

if TYPE_CHECKING:
    from collections.abc import Iterator

# A calendar closed this many days in a row is misconfigured (every day a
# holiday); stop rather than loop for ever. Ten years of closure is the limit.
MAX_CLOSED_DAYS = 3660

_ONE_DAY = timedelta(days=1)
_RESOLUTION = timedelta(microseconds=1)
_MONDAY_TO_FRIDAY = frozenset(range(5))

Window = tuple[datetime, datetime]


def to_utc(at: datetime) -> datetime:
    """Return `at` as an aware UTC datetime.

    Raises:
        ValueError: `at` is naive, so the instant it names is unknown.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"expected an aware datetime (got naive {at.isoformat()})")
    return at.astimezone(UTC)


@dataclass(frozen=True)
class WorkingHours:
    """Opening time, closing time and working days: one customer's own business hours."""

    opens: time
    closes: time
    weekdays: frozenset[int]


@dataclass(frozen=True)
class BusinessCalendar:
    """The working hours of one time zone, minus weekends and holidays.

    Opening and closing are local wall-clock times. A business day runs from the
    first instant the local clock reads `opens` to the first instant it reads
    `closes`, so on a DST-change day it may last an hour more or less, a day
    whose `opens` falls in a skipped hour opens when the clock jumps past it, and
    a repeated hour inside business hours is worked through. A holiday is a whole
    local date. Every instant taken or returned is aware; results are UTC.
    """

    tz: ZoneInfo
    opens: time = time(9)
    closes: time = time(18)
    weekdays: frozenset[int] = _MONDAY_TO_FRIDAY
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.tz, ZoneInfo):
            raise TypeError(f"tz must be a ZoneInfo (got {type(self.tz).__name__})")
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ValueError("opens and closes are local wall-clock times and take no tzinfo")
        if not self.opens < self.closes:
            raise ValueError(f"opens must be before closes (got {self.opens} to {self.closes})")
        if not self.weekdays:
            raise ValueError("weekdays must name at least one day")
        if not self.weekdays <= frozenset(range(7)):
            raise ValueError(f"weekdays are 0 (Monday) to 6 (got {sorted(self.weekdays)})")
        # datetime subclasses date; a datetime here would never equal a local date.
        if any(type(day) is not date for day in self.holidays):
            raise ValueError("holidays must be dates, not datetimes")

    @property
    def day_length(self) -> timedelta:
        """Length of an ordinary business day; DST-change days may differ."""
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def with_hours(self, hours: WorkingHours | None) -> BusinessCalendar:
        """This calendar with another opening time, closing time and working days."""
        if hours is None:
            return self
        return replace(self, opens=hours.opens, closes=hours.closes, weekdays=hours.weekdays)

    def is_open(self, at: datetime) -> bool:
        """Return whether `at` falls within business hours."""
        at = to_utc(at)
        day = _local_date(at, self.tz)
        # The next date counts too: a clock going back over midnight re-reads
        # today's late hours after tomorrow's opening time has already passed.
        windows = (self._window(day + offset * _ONE_DAY) for offset in (0, 1))
        return any(w is not None and w[0] <= at < w[1] for w in windows)

    def next_opening(self, at: datetime) -> datetime:
        """Return the first business instant at or after `at` (`at` itself when open)."""
        return self.add(at, timedelta(0))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """Return the instant when `duration` of business time has elapsed since `start`.

        Counting starts at the next opening when `start` is closed, so a zero
        duration from a closed instant gives the next opening. A duration used up
        exactly at closing time is due at closing time, not the next morning.

        Raises:
            ValueError: `start` is naive, `duration` is negative, or the calendar
                stays closed for `MAX_CLOSED_DAYS` days.
        """
        if duration < timedelta(0):
            raise ValueError(f"duration must not be negative (got {duration})")
        start = to_utc(start)
        left = duration
        for opening, closing in self._windows_after(start):
            begin = max(opening, start)
            if left <= closing - begin:
                return begin + left
            left -= closing - begin
        raise AssertionError("unreachable: _windows_after never ends")  # pragma: no cover

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Return the business time between `start` and `end`, negative if `end` is earlier."""
        start, end = to_utc(start), to_utc(end)
        if end < start:
            return -self.elapsed(end, start)
        total = timedelta(0)
        for opening, closing in self._windows_after(start):
            if opening >= end:
                break
            total += min(closing, end) - max(opening, start)
        return total

    def _windows_after(self, at: datetime) -> Iterator[Window]:
        """Yield, in order, the non-empty business windows that end after `at`."""
        # No earlier date's window can reach `at`: it closes when the clock first
        # reads that date's closing time, which is before the clock reads `at`'s date.
        day = _local_date(at, self.tz)
        closed_days = 0
        while closed_days < MAX_CLOSED_DAYS:
            window = self._window(day)
            day += _ONE_DAY
            if window is None or window[0] == window[1]:
                closed_days += 1
            elif window[1] > at:
                closed_days = 0
                yield window
        raise ValueError(f"calendar is closed for {MAX_CLOSED_DAYS} days in a row, up to {day}")

    def _window(self, day: date) -> Window | None:
        """Return the UTC opening and closing instants of `day`, or None if closed."""
        if day.weekday() not in self.weekdays or day in self.holidays:
            return None
        return _opening_hours(self.tz, self.opens, self.closes, day)


# Each new case's clock walks the same few days' windows three times (due, elapsed,
# reminder), and every case of a day walks the same days; a window costs a dozen time
# zone conversions. The arguments are values, so equal calendars share entries.
@functools.lru_cache(maxsize=4096)
def _opening_hours(tz: ZoneInfo, opens: time, closes: time, day: date) -> Window:
    """The UTC instants at which `day` opens and closes in `tz` (see BusinessCalendar)."""
    opening = _first_instant_reading(datetime.combine(day, opens), tz)
    closing = _first_instant_reading(datetime.combine(day, closes), tz)
    return opening, closing


def _local_date(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def _wall_clock(at: datetime, tz: ZoneInfo) -> datetime:
    return at.astimezone(tz).replace(tzinfo=None)


def _first_instant_reading(wall: datetime, tz: ZoneInfo) -> datetime:
    """Return the earliest UTC instant at which the clock in `tz` reads `wall` or later.

    An ambiguous reading (clocks going back) gives its first occurrence. A
    skipped reading (clocks going forward) gives the instant of the jump, found by
    bisection between the two offsets' interpretations.
    """
    candidates = [wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)]
    earlier, later = min(candidates), max(candidates)
    if _wall_clock(earlier, tz) == wall:
        return earlier
    if _wall_clock(later, tz) == wall:
        return later
    # `wall` is skipped: the clock reads before it at `earlier` and after it at `later`.
    while later - earlier > _RESOLUTION:
        middle = earlier + (later - earlier) // 2
        if _wall_clock(middle, tz) < wall:
            earlier = middle
        else:
            later = middle
    return later


def holidays_for(country: str, years: range, subdiv: str | None = None) -> frozenset[date]:
    """Return the public holidays of `country` (ISO 3166 code) in `years`.

    Args:
        country: an ISO 3166-1 alpha-2 code such as "DE".
        years: the calendar years to cover.
        subdiv: a subdivision such as "BY" for Bavaria, where holidays differ.

    Raises:
        ValueError: the `holidays` package knows no such country or subdivision.
    """
    try:
        table = holiday_data.country_holidays(country, subdiv=subdiv, years=list(years))
    except NotImplementedError as exc:
        where = country if subdiv is None else f"{country}-{subdiv}"
        raise ValueError(f"no holiday data for {where!r}: {exc}") from exc
    return frozenset(table.keys())
