"""Unit and property tests for the business calendar."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sla.business_hours import MAX_CLOSED_DAYS, BusinessCalendar, holidays_for, to_utc

if TYPE_CHECKING:
    from collections.abc import Callable

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
EVERY_DAY = frozenset(range(7))

# Week of Monday 2024-06-03 in Berlin: no holidays, no DST change.
MON, TUE, WED, FRI, SAT, SUN = 3, 4, 5, 7, 8, 9


def at(day: int, hour: int, minute: int = 0, *, month: int = 6, tz: ZoneInfo = BERLIN) -> datetime:
    """Return an aware local time in 2024 (June by default)."""
    return datetime(2024, month, day, hour, minute, tzinfo=tz)


def _around_the_clock(tz: ZoneInfo, opens: time, closes: time) -> BusinessCalendar:
    return BusinessCalendar(tz, opens=opens, closes=closes, weekdays=EVERY_DAY)


BERLIN_CAL = BusinessCalendar(BERLIN)
NY_CAL = BusinessCalendar(NEW_YORK)
LORD_HOWE_NIGHTS = _around_the_clock(LORD_HOWE, time(1), time(3))


# --- Table-driven examples -------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (at(FRI, 17), 4 * HOUR, at(MON + 7, 12)),
        (at(SAT, 10), 4 * HOUR, at(MON + 7, 13)),
        (at(SUN, 23, 59), MINUTE, at(MON + 7, 9, 1)),
        (at(MON, 8), 4 * HOUR, at(MON, 13)),
        (at(MON, 9), 9 * HOUR, at(MON, 18)),
        (at(MON, 14), 4 * HOUR, at(MON, 18)),
        (at(MON, 18), MINUTE, at(TUE, 9, 1)),
        (at(MON, 12), 18 * HOUR, at(WED, 12)),
        (at(MON, 9), 18 * HOUR, at(TUE, 18)),
        (at(FRI, 12), 18 * HOUR, at(TUE + 7, 12)),
        (at(MON, 10), timedelta(0), at(MON, 10)),
        (at(MON, 18), timedelta(0), at(TUE, 9)),
        (at(SAT, 12), timedelta(0), at(MON + 7, 9)),
        (at(MON, 7), timedelta(0), at(MON, 9)),
        (at(MON, 10) + timedelta(seconds=30), timedelta(seconds=30), at(MON, 10, 1)),
        (at(MON, 18) - timedelta(microseconds=1), timedelta(microseconds=1), at(MON, 18)),
        (at(MON, 9), 45 * HOUR, at(FRI, 18)),
        (at(MON, 9), 45 * HOUR + MINUTE, at(MON + 7, 9, 1)),
    ],
)
def test_add_in_an_ordinary_week(start: datetime, duration: timedelta, expected: datetime) -> None:
    """Business time skips nights and weekends, and a target met at closing is due then."""
    assert BERLIN_CAL.add(start, duration) == expected


def test_add_returns_utc() -> None:
    """Results are aware UTC whatever zone the start was given in."""
    due = BERLIN_CAL.add(at(FRI, 17), 4 * HOUR)
    assert due.tzinfo is UTC
    assert due == datetime(2024, 6, 10, 10, tzinfo=UTC)


# German holidays around Easter and Christmas 2024, plus New Year's Eve as a company day.
HOLIDAYS = frozenset(
    {date(2024, 3, 29), date(2024, 4, 1), date(2024, 12, 24), date(2024, 12, 25)}
    | {date(2024, 12, 26), date(2024, 12, 31), date(2025, 1, 1)}
)
HOLIDAY_CAL = BusinessCalendar(BERLIN, holidays=HOLIDAYS)


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (at(28, 17, month=3), 4 * HOUR, at(2, 12, month=4)),
        (at(29, 10, month=3), timedelta(0), at(2, 9, month=4)),
        (at(23, 15, month=12), 18 * HOUR, at(30, 15, month=12)),
        (at(30, 15, month=12), 9 * HOUR, datetime(2025, 1, 2, 15, tzinfo=BERLIN)),
    ],
)
def test_add_skips_holidays(start: datetime, duration: timedelta, expected: datetime) -> None:
    """A holiday is closed all day, and clusters of holidays are skipped together."""
    assert HOLIDAY_CAL.add(start, duration) == expected


def test_holiday_is_a_local_date() -> None:
    """A holiday follows the calendar's zone, not UTC: Kolkata's morning is UTC's night."""
    calendar = BusinessCalendar(KOLKATA, holidays=frozenset({date(2024, 6, 4)}))
    # 2024-06-03 23:00 UTC is already Tuesday 04:30 in Kolkata, a holiday there.
    start = datetime(2024, 6, 3, 23, tzinfo=UTC)
    assert calendar.add(start, timedelta(0)) == at(WED, 9, tz=KOLKATA)


@pytest.mark.parametrize(
    ("calendar", "start", "duration", "expected"),
    [
        # Berlin springs forward on Sunday 2024-03-31: Friday 16:00 UTC to Monday 10:00 UTC.
        (BERLIN_CAL, at(29, 17, month=3), 4 * HOUR, at(1, 12, month=4)),
        # New York springs forward on Sunday 2024-03-10 and falls back on 2024-11-03.
        (NY_CAL, at(8, 16, month=3, tz=NEW_YORK), 4 * HOUR, at(11, 11, month=3, tz=NEW_YORK)),
        (NY_CAL, at(1, 17, month=11, tz=NEW_YORK), 2 * HOUR, at(4, 10, month=11, tz=NEW_YORK)),
        # Kolkata is UTC+05:30 all year.
        (BusinessCalendar(KOLKATA), at(MON, 17, 30, tz=KOLKATA), HOUR, at(TUE, 9, 30, tz=KOLKATA)),
    ],
)
def test_add_across_dst_weekends_and_odd_offsets(
    calendar: BusinessCalendar, start: datetime, duration: timedelta, expected: datetime
) -> None:
    """Local opening hours hold on both sides of a DST change and in half-hour zones."""
    assert calendar.add(start, duration) == expected


@pytest.mark.parametrize(
    ("calendar", "day", "real_length"),
    [
        # Spring forward at 02:00 local: the day 00:00-12:00 has 11 real hours.
        (_around_the_clock(BERLIN, time(0), time(12)), at(31, 0, month=3), 11 * HOUR),
        # Fall back at 03:00 local: the day 00:00-12:00 has 13 real hours.
        (_around_the_clock(BERLIN, time(0), time(12)), at(27, 0, month=10), 13 * HOUR),
        # Opening at 02:30 falls in the skipped hour: open from the jump, 03:00 CEST.
        (_around_the_clock(BERLIN, time(2, 30), time(12)), at(31, 0, month=3), 9 * HOUR),
        # Opening at 02:30 is read twice: open from the first reading, through the repeat.
        (_around_the_clock(BERLIN, time(2, 30), time(12)), at(27, 0, month=10), 10.5 * HOUR),
        # Lord Howe falls back half an hour, 02:00 to 01:30, on 2024-04-07.
        (LORD_HOWE_NIGHTS, at(7, 0, month=4, tz=LORD_HOWE), 2.5 * HOUR),
        # Lord Howe springs forward half an hour, 02:00 to 02:30, on 2024-10-06.
        (LORD_HOWE_NIGHTS, at(6, 0, month=10, tz=LORD_HOWE), 1.5 * HOUR),
    ],
)
def test_business_day_on_a_dst_change_lasts_its_real_length(
    calendar: BusinessCalendar, day: datetime, real_length: timedelta
) -> None:
    """A business day spans the real time between its local opening and closing."""
    assert calendar.elapsed(day, day + timedelta(days=1)) == real_length


def test_opening_in_a_skipped_hour_opens_at_the_jump() -> None:
    """When the clock jumps over the opening time, business starts at the jump."""
    calendar = _around_the_clock(BERLIN, time(2, 30), time(12))
    assert calendar.next_opening(at(31, 0, month=3)) == datetime(2024, 3, 31, 1, tzinfo=UTC)


def test_clock_going_back_over_midnight_keeps_the_new_day_open() -> None:
    """Once a day has opened, re-reading yesterday's late hours does not close it.

    St John's went back from 00:01 to 23:01 the previous evening on 2010-11-07.
    """
    calendar = _around_the_clock(ZoneInfo("America/St_Johns"), time(0), time(12))
    opened = datetime(2010, 11, 7, 2, 30, tzinfo=UTC)
    repeat = datetime(2010, 11, 7, 3, tzinfo=UTC)  # reads 23:30 on the 6th
    assert calendar.next_opening(opened - MINUTE) == opened
    assert calendar.is_open(repeat)
    assert calendar.next_opening(repeat) == repeat


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (at(MON, 9), True),
        (at(MON, 8, 59), False),
        (at(MON, 17, 59), True),
        (at(MON, 18), False),
        (at(FRI, 12), True),
        (at(SAT, 12), False),
        (at(SUN, 12), False),
        (datetime(2024, 6, 3, 7, tzinfo=UTC), True),
        (datetime(2024, 6, 3, 16, tzinfo=UTC), False),
    ],
)
def test_is_open(moment: datetime, is_open: bool) -> None:
    """Opening time is open and closing time is closed, on business weekdays only."""
    assert BERLIN_CAL.is_open(moment) is is_open


def test_is_open_on_a_holiday() -> None:
    """Nobody is in on a holiday, even at noon on a weekday."""
    assert not HOLIDAY_CAL.is_open(at(1, 12, month=4))
    assert BERLIN_CAL.is_open(at(1, 12, month=4))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (at(MON, 9), at(MON, 18), 9 * HOUR),
        (at(MON, 8), at(MON, 10), HOUR),
        (at(MON, 17), at(TUE, 10), 2 * HOUR),
        (at(FRI, 17), at(MON + 7, 12), 4 * HOUR),
        (at(SAT, 0), at(SUN, 23), timedelta(0)),
        (at(MON, 0), at(MON + 7, 0), 45 * HOUR),
        (at(MON, 12), at(MON, 12), timedelta(0)),
        (at(TUE, 10), at(MON, 17), -2 * HOUR),
        (at(MON, 10) + timedelta(seconds=1.5), at(MON, 10, 1), timedelta(seconds=58.5)),
    ],
)
def test_elapsed(start: datetime, end: datetime, expected: timedelta) -> None:
    """Only open time counts, to the microsecond, and a reversed span is negative."""
    assert BERLIN_CAL.elapsed(start, end) == expected


@pytest.mark.parametrize(
    ("opens", "closes", "length"),
    [(time(9), time(18), 9 * HOUR), (time(8, 30), time(17), 8.5 * HOUR)],
)
def test_day_length(opens: time, closes: time, length: timedelta) -> None:
    """A business day is as long as its opening hours on the wall clock."""
    assert BusinessCalendar(BERLIN, opens=opens, closes=closes).day_length == length


def test_defaults_are_nine_to_six_monday_to_friday() -> None:
    """An unconfigured calendar keeps the DESIGN.md hours."""
    calendar = BusinessCalendar(BERLIN)
    assert (calendar.opens, calendar.closes) == (time(9), time(18))
    assert calendar.weekdays == frozenset({0, 1, 2, 3, 4})
    assert calendar.holidays == frozenset()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"opens": time(18), "closes": time(9)}, "opens must be before closes"),
        ({"opens": time(9), "closes": time(9)}, "opens must be before closes"),
        ({"weekdays": frozenset()}, "at least one day"),
        ({"weekdays": frozenset({7})}, "0 \\(Monday\\) to 6"),
        ({"opens": time(9, tzinfo=UTC)}, "wall-clock"),
        ({"holidays": frozenset({datetime(2024, 1, 1, tzinfo=UTC)})}, "dates, not datetimes"),
    ],
)
def test_invalid_calendars_are_refused(changes: dict[str, object], message: str) -> None:
    """A calendar that could never be open, or is ambiguous, fails when built."""
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(BERLIN, **changes)  # type: ignore[arg-type]


def test_time_zone_must_be_a_zoneinfo() -> None:
    """Fixed offsets would hide DST, so the zone must be a named IANA zone."""
    with pytest.raises(TypeError, match="ZoneInfo"):
        BusinessCalendar(UTC)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda: BERLIN_CAL.add(datetime(2024, 6, 3, 9), HOUR),  # noqa: DTZ001
        lambda: BERLIN_CAL.elapsed(at(MON, 9), datetime(2024, 6, 3, 9)),  # noqa: DTZ001
        lambda: BERLIN_CAL.is_open(datetime(2024, 6, 3, 9)),  # noqa: DTZ001
        lambda: BERLIN_CAL.next_opening(datetime(2024, 6, 3, 9)),  # noqa: DTZ001
    ],
)
def test_naive_datetimes_are_refused(call: Callable[[], object]) -> None:
    """A naive datetime names no instant, so every method refuses one."""
    with pytest.raises(ValueError, match="naive"):
        call()


def test_negative_duration_is_refused() -> None:
    """Business time only runs forward."""
    with pytest.raises(ValueError, match="negative"):
        BERLIN_CAL.add(at(MON, 9), -MINUTE)


def test_calendar_that_never_opens_fails_instead_of_looping() -> None:
    """If every business day is a holiday for ten years, add raises rather than hang."""
    mondays = frozenset(date(2024, 6, 3) + timedelta(weeks=n) for n in range(600))
    calendar = BusinessCalendar(BERLIN, weekdays=frozenset({0}), holidays=mondays)
    with pytest.raises(ValueError, match=f"closed for {MAX_CLOSED_DAYS} days"):
        calendar.add(at(MON, 9), HOUR)


def test_add_visits_only_the_days_it_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    """18 business hours over Christmas look at a couple of weeks of days, not minutes."""
    seen: list[date] = []
    original = BusinessCalendar._window

    def counting(self: BusinessCalendar, day: date) -> tuple[datetime, datetime] | None:
        seen.append(day)
        return original(self, day)

    monkeypatch.setattr(BusinessCalendar, "_window", counting)
    HOLIDAY_CAL.add(at(23, 15, month=12), 18 * HOUR)
    assert len(seen) <= 10


def test_large_targets_stay_consistent() -> None:
    """A thousand business days forward and back measure the same thousand days."""
    start = at(MON, 10)
    due = BERLIN_CAL.add(start, 9000 * HOUR)
    assert BERLIN_CAL.elapsed(start, due) == 9000 * HOUR


def test_holidays_for_germany_and_a_subdivision() -> None:
    """Holiday tables come from the holidays package, per country and region."""
    national = holidays_for("DE", range(2024, 2026))
    bavaria = holidays_for("DE", range(2024, 2026), subdiv="BY")
    assert {date(2024, 10, 3), date(2025, 12, 25), date(2024, 3, 29)} <= national
    assert date(2024, 1, 6) in bavaria
    assert date(2024, 1, 6) not in national
    assert all(d.year in {2024, 2025} for d in national)


@pytest.mark.parametrize(("country", "subdiv"), [("XX", None), ("DE", "ZZ")])
def test_holidays_for_unknown_places(country: str, subdiv: str | None) -> None:
    """An unknown country or region is a configuration error, named in the message."""
    with pytest.raises(ValueError, match="no holiday data"):
        holidays_for(country, range(2024, 2025), subdiv)


# --- Brute-force reference ---------------------------------------------------------------
#
# Independent of the implementation: walk UTC minute by minute and ask, for each
# minute, whether its local wall-clock reading is in business hours.

BRUTE_FORCE_LIMIT = 200_000  # minutes (about 140 days): a bug, not a slow test


def is_business_minute(calendar: BusinessCalendar, minute: datetime) -> bool:
    """Return whether the minute starting at `minute` is business time."""
    local = minute.astimezone(calendar.tz)
    return (
        local.weekday() in calendar.weekdays
        and local.date() not in calendar.holidays
        and calendar.opens <= local.time() < calendar.closes
    )


def brute_add(calendar: BusinessCalendar, start: datetime, minutes: int) -> datetime:
    """Return the end of the `minutes`-th business minute from `start` (or the first one)."""
    moment = start
    for _ in range(BRUTE_FORCE_LIMIT):
        if is_business_minute(calendar, moment):
            if minutes == 0:
                return moment
            minutes -= 1
            if minutes == 0:
                return moment + MINUTE
        moment += MINUTE
    raise AssertionError("brute force ran out of minutes")


def brute_elapsed(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """Return the business minutes in [start, end)."""
    count = (end - start) // MINUTE
    return MINUTE * sum(is_business_minute(calendar, start + n * MINUTE) for n in range(count))


# --- Strategies --------------------------------------------------------------------------

ZONES = (
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Santiago",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Africa/Cairo",
)
FIRST_DAY, LAST_DAY = date(2019, 1, 1), date(2029, 12, 31)


@functools.cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """Return the UTC instants, to the minute, at which `zone` changes offset."""
    tz = ZoneInfo(zone)
    found = []
    day = datetime.combine(FIRST_DAY, time(), UTC)
    while day.date() < LAST_DAY:
        if day.astimezone(tz).utcoffset() != (day + timedelta(days=1)).astimezone(tz).utcoffset():
            found.append(_bisect_offset_change(tz, day, day + timedelta(days=1)))
        day += timedelta(days=1)
    return tuple(found)


def _bisect_offset_change(tz: ZoneInfo, before: datetime, after: datetime) -> datetime:
    offset = before.astimezone(tz).utcoffset()
    low, high = 0, (after - before) // MINUTE
    while high - low > 1:
        middle = (low + high) // 2
        if (before + middle * MINUTE).astimezone(tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return before + high * MINUTE


@dataclass(frozen=True)
class Scenario:
    """A calendar and a minute-aligned start to measure from."""

    calendar: BusinessCalendar
    start: datetime


weekday_sets = st.one_of(st.just(frozenset(range(5))), st.frozensets(st.integers(0, 6), min_size=2))


@functools.cache
def repeated_hours(zone: str) -> tuple[tuple[int, int], ...]:
    """Return the wall-clock spans, in minutes of the day, that `zone` reads twice."""
    tz = ZoneInfo(zone)
    spans = []
    for change in transitions(zone):
        before = (change - MINUTE).astimezone(tz).utcoffset()
        after = change.astimezone(tz).utcoffset()
        if before is not None and after is not None and after < before:
            wall = change + after
            first = wall.hour * 60 + wall.minute
            spans.append((first, first + (before - after) // MINUTE))
    return tuple(spans)


@functools.cache
def changes_of_wall_clock(zone: str) -> tuple[int, ...]:
    """Return the minutes of the day at which `zone`'s clocks jump, before the jump."""
    tz = ZoneInfo(zone)
    walls = {(change - MINUTE).astimezone(tz) + MINUTE for change in transitions(zone)}
    return tuple(sorted({wall.hour * 60 + wall.minute for wall in walls}))


def splits_a_repeated_hour(zone: str, minute_of_day: int) -> bool:
    """Return whether a wall-clock time falls strictly inside a span read twice.

    There the reference counts the repeat by its wall reading while the calendar,
    like a business that stays open, works straight through; unit tests above pin
    those days down, so the properties avoid them.
    """
    return any(
        first < minute < last
        for first, last in repeated_hours(zone)
        for minute in (minute_of_day, minute_of_day + 24 * 60)
    )


def _minute_of_day(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


@st.composite
def starts(draw: st.DrawFn, zone: str, opens: time, closes: time) -> datetime:
    """Draw a start anywhere, near a DST change, or near an opening or closing."""
    tz = ZoneInfo(zone)
    nearby = st.integers(-3 * 24 * 60, 3 * 24 * 60).map(lambda n: n * MINUTE)
    kind = draw(st.sampled_from(["anywhere", "dst", "edge"]))
    if kind == "dst" and transitions(zone):
        return draw(st.sampled_from(transitions(zone))) + draw(nearby)
    day = draw(st.dates(FIRST_DAY, LAST_DAY))
    if kind == "edge":
        edge = datetime.combine(day, draw(st.sampled_from([opens, closes])), tz)
        return edge.astimezone(UTC).replace(second=0) + draw(st.integers(-3, 3)) * MINUTE
    return datetime.combine(day, time(), UTC) + draw(st.integers(0, 24 * 60 - 1)) * MINUTE


@st.composite
def opening_hours(draw: st.DrawFn, zone: str) -> tuple[time, time]:
    """Draw opening and closing times, often 09:00-18:00, never splitting a repeat."""
    near_changes = st.sampled_from(changes_of_wall_clock(zone) or (0,)).flatmap(
        lambda minute: st.integers(max(minute - 30, 0), min(minute + 60, 24 * 60 - 2))
    )
    opens = draw(st.one_of(st.just(9 * 60), st.integers(0, 24 * 60 - 2), near_changes))
    closes = draw(st.one_of(st.just(18 * 60), st.integers(opens + 1, 24 * 60 - 1), near_changes))
    assume(opens < closes)
    assume(not any(splits_a_repeated_hour(zone, m) for m in (opens, closes)))
    return _minute_of_day(opens), _minute_of_day(closes)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Draw a calendar in a varied zone, with holidays close to a drawn start."""
    zone = draw(st.sampled_from(ZONES))
    opens, closes = draw(opening_hours(zone))
    start = draw(starts(zone, opens, closes))
    local_day = start.astimezone(ZoneInfo(zone)).date()
    offsets = draw(st.frozensets(st.integers(-2, 14), max_size=6))
    calendar = BusinessCalendar(
        ZoneInfo(zone),
        opens=opens,
        closes=closes,
        weekdays=draw(weekday_sets),
        holidays=frozenset(local_day + timedelta(days=n) for n in offsets),
    )
    return Scenario(calendar, start)


def _minutes_up_to_days(scenario: Scenario, days: int) -> st.SearchStrategy[int]:
    day_minutes = scenario.calendar.day_length // MINUTE
    return st.one_of(st.integers(0, 3), st.integers(0, days * day_minutes))


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


# --- Properties against the reference ----------------------------------------------------


@PROPERTY_SETTINGS
@given(scenarios(), st.data())
def test_add_matches_brute_force(scenario: Scenario, data: st.DataObject) -> None:
    """Adding whole minutes lands where counting business minutes one by one lands."""
    minutes = data.draw(_minutes_up_to_days(scenario, 3))
    expected = brute_add(scenario.calendar, scenario.start, minutes)
    assert scenario.calendar.add(scenario.start, minutes * MINUTE) == expected


@PROPERTY_SETTINGS
@given(scenarios(), st.integers(0, 6 * 24 * 60))
def test_elapsed_matches_brute_force(scenario: Scenario, span: int) -> None:
    """Elapsed business time equals the business minutes counted one by one."""
    end = scenario.start + span * MINUTE
    expected = brute_elapsed(scenario.calendar, scenario.start, end)
    assert scenario.calendar.elapsed(scenario.start, end) == expected


@PROPERTY_SETTINGS
@given(scenarios())
def test_is_open_and_next_opening_match_brute_force(scenario: Scenario) -> None:
    """A minute is open exactly when the reference says so, and opening is the next such."""
    calendar, start = scenario.calendar, scenario.start
    assert calendar.is_open(start) is is_business_minute(calendar, start)
    assert calendar.next_opening(start) == brute_add(calendar, start, 0)


# --- Algebraic properties (any instant, to the microsecond) ------------------------------

micro_durations = st.timedeltas(timedelta(0), timedelta(days=4))


@st.composite
def precise_scenarios(draw: st.DrawFn) -> Scenario:
    """Draw a scenario whose start is moved off the minute by up to a minute."""
    scenario = draw(scenarios())
    jitter = draw(st.timedeltas(timedelta(0), MINUTE))
    return Scenario(scenario.calendar, scenario.start + jitter)


@PROPERTY_SETTINGS
@given(precise_scenarios(), micro_durations)
def test_elapsed_undoes_add(scenario: Scenario, duration: timedelta) -> None:
    """The business time from a start to start-plus-d is d, whether or not start is open."""
    due = scenario.calendar.add(scenario.start, duration)
    assert scenario.calendar.elapsed(scenario.start, due) == duration


@PROPERTY_SETTINGS
@given(precise_scenarios(), micro_durations, micro_durations)
def test_add_is_monotonic(scenario: Scenario, first: timedelta, second: timedelta) -> None:
    """A longer target is never due earlier than a shorter one."""
    shorter, longer = sorted([first, second])
    calendar = scenario.calendar
    assert calendar.add(scenario.start, shorter) <= calendar.add(scenario.start, longer)


@PROPERTY_SETTINGS
@given(precise_scenarios(), micro_durations, micro_durations.filter(bool))
def test_add_composes(scenario: Scenario, first: timedelta, second: timedelta) -> None:
    """Adding a then a positive b is adding a + b in one go."""
    calendar = scenario.calendar
    stepwise = calendar.add(calendar.add(scenario.start, first), second)
    assert stepwise == calendar.add(scenario.start, first + second)


@PROPERTY_SETTINGS
@given(precise_scenarios(), st.timedeltas(timedelta(days=-5), timedelta(days=5)))
def test_elapsed_is_antisymmetric_and_bounded(scenario: Scenario, span: timedelta) -> None:
    """Swapping the ends negates elapsed time, which never exceeds the real time between."""
    calendar, start = scenario.calendar, scenario.start
    forward = calendar.elapsed(start, start + span)
    assert calendar.elapsed(start + span, start) == -forward
    assert abs(forward) <= abs(span)


@PROPERTY_SETTINGS
@given(precise_scenarios())
def test_results_are_utc_and_open_or_at_closing(scenario: Scenario) -> None:
    """The next opening is open, in UTC, and never before the start."""
    opening = scenario.calendar.next_opening(scenario.start)
    assert opening.tzinfo is UTC
    assert opening >= scenario.start
    assert scenario.calendar.is_open(opening)


def test_to_utc_converts_aware_and_refuses_naive() -> None:
    """An aware time becomes the same instant in UTC; a naive one is refused."""
    assert to_utc(at(MON, 9)) == datetime(2024, 6, 3, 7, tzinfo=UTC)
    assert to_utc(at(MON, 9)).tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        to_utc(datetime(2024, 6, 3, 9))  # noqa: DTZ001
