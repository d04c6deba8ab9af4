"""Unit and property tests for SLA deadlines, reminders and time remaining."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sla.business_hours import BusinessCalendar
from sla.deadlines import due_at, first_response_due, next_update_due, remaining, reminder_due
from sla.policy import Clock, Priority, default_policy

if TYPE_CHECKING:
    from collections.abc import Callable

BERLIN = ZoneInfo("Europe/Berlin")
CALENDAR = BusinessCalendar(BERLIN)
HOUR = timedelta(hours=1)
POLICY = default_policy()
STANDARD, PREMIER = POLICY.plan("standard"), POLICY.plan("premier")


def berlin(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """Return an aware Berlin time in 2024."""
    return datetime(2024, month, day, hour, minute, tzinfo=BERLIN)


# Friday 2024-06-07 and the weekend after it; Berlin is UTC+2 in June.
FRIDAY_5PM = berlin(6, 7, 17)


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (Priority.HIGH, berlin(6, 10, 12)),
        (Priority.MEDIUM, berlin(6, 10, 17)),
        (Priority.LOW, berlin(6, 11, 17)),
    ],
)
def test_standard_first_response_counts_business_hours(
    priority: Priority, expected: datetime
) -> None:
    """A standard case opened on Friday at 17:00 waits out the weekend."""
    assert first_response_due(FRIDAY_5PM, STANDARD, priority, CALENDAR) == expected


@pytest.mark.parametrize(
    ("priority", "first", "update"),
    [
        (Priority.HIGH, berlin(6, 7, 18), berlin(6, 7, 19)),
        (Priority.MEDIUM, berlin(6, 7, 21), berlin(6, 8, 5)),
        (Priority.LOW, berlin(6, 8, 1), berlin(6, 8, 17)),
    ],
)
def test_premier_targets_run_round_the_clock(
    priority: Priority, first: datetime, update: datetime
) -> None:
    """Premier targets run through evenings and weekends."""
    assert first_response_due(FRIDAY_5PM, PREMIER, priority, CALENDAR) == first
    assert next_update_due(FRIDAY_5PM, PREMIER, priority, CALENDAR) == update


def test_standard_update_counts_from_the_reply() -> None:
    """After an agent replies on Thursday at 16:00, a high-priority update is due Friday 11:00."""
    replied_at = berlin(6, 6, 16)
    assert next_update_due(replied_at, STANDARD, Priority.HIGH, CALENDAR) == berlin(6, 7, 11)


def test_calendar_clock_counts_real_hours_across_dst() -> None:
    """24 calendar hours across the spring change are 24 real hours: 17:00 becomes 18:00."""
    due = due_at(berlin(3, 30, 17), 24 * HOUR, Clock.CALENDAR, CALENDAR)
    assert due == berlin(3, 31, 18)
    assert due - berlin(3, 30, 17) == 24 * HOUR


def test_deadlines_are_utc() -> None:
    """Deadlines come back as aware UTC, ready for storage."""
    for clock in Clock:
        due = due_at(FRIDAY_5PM, HOUR, clock, CALENDAR)
        assert due.tzinfo is UTC


def test_zero_target_on_business_clock_waits_for_opening() -> None:
    """A zero business target from a closed time falls due at the next opening."""
    assert due_at(FRIDAY_5PM + 2 * HOUR, timedelta(0), Clock.BUSINESS, CALENDAR) == berlin(6, 10, 9)


@pytest.mark.parametrize(
    ("start", "due", "share", "clock", "expected"),
    [
        (berlin(6, 7, 17), berlin(6, 10, 12), 0.75, Clock.BUSINESS, berlin(6, 10, 11)),
        (berlin(6, 7, 17), berlin(6, 7, 18), 0.75, Clock.CALENDAR, berlin(6, 7, 17, 45)),
        (berlin(6, 7, 17), berlin(6, 8, 17), 0.5, Clock.CALENDAR, berlin(6, 8, 5)),
        (berlin(6, 8, 10), berlin(6, 10, 13), 0.75, Clock.BUSINESS, berlin(6, 10, 12)),
        (berlin(6, 7, 17), berlin(6, 10, 12), 0.0, Clock.BUSINESS, berlin(6, 7, 17)),
        (berlin(6, 7, 17), berlin(6, 10, 12), 1.0, Clock.BUSINESS, berlin(6, 10, 12)),
    ],
)
def test_reminder_due(
    start: datetime, due: datetime, share: float, clock: Clock, expected: datetime
) -> None:
    """The reminder comes when the share of the target's own clock time has gone by."""
    assert reminder_due(start, due, share, clock, CALENDAR) == expected


@pytest.mark.parametrize(
    ("now", "due", "clock", "expected"),
    [
        (berlin(6, 7, 17), berlin(6, 10, 12), Clock.BUSINESS, 4 * HOUR),
        (berlin(6, 8, 12), berlin(6, 10, 12), Clock.BUSINESS, 3 * HOUR),
        (berlin(6, 10, 14), berlin(6, 10, 12), Clock.BUSINESS, -2 * HOUR),
        (berlin(6, 10, 9), berlin(6, 7, 18), Clock.BUSINESS, timedelta(0)),
        (berlin(6, 7, 17), berlin(6, 10, 12), Clock.CALENDAR, 67 * HOUR),
        (berlin(6, 10, 14), berlin(6, 10, 12), Clock.CALENDAR, -2 * HOUR),
    ],
)
def test_remaining(now: datetime, due: datetime, clock: Clock, expected: timedelta) -> None:
    """Time left runs on the target's clock and goes negative once overdue."""
    assert remaining(now, due, clock, CALENDAR) == expected


NAIVE = datetime(2024, 6, 7, 17)  # noqa: DTZ001 - the input under test


@pytest.mark.parametrize(
    "call",
    [
        lambda: due_at(NAIVE, HOUR, Clock.CALENDAR, CALENDAR),
        lambda: due_at(NAIVE, HOUR, Clock.BUSINESS, CALENDAR),
        lambda: first_response_due(NAIVE, STANDARD, Priority.HIGH, CALENDAR),
        lambda: next_update_due(NAIVE, PREMIER, Priority.LOW, CALENDAR),
        lambda: reminder_due(NAIVE, FRIDAY_5PM, 0.75, Clock.CALENDAR, CALENDAR),
        lambda: reminder_due(FRIDAY_5PM, NAIVE, 0.75, Clock.BUSINESS, CALENDAR),
        lambda: remaining(NAIVE, FRIDAY_5PM, Clock.CALENDAR, CALENDAR),
        lambda: remaining(FRIDAY_5PM, NAIVE, Clock.BUSINESS, CALENDAR),
    ],
)
def test_naive_datetimes_are_refused(call: Callable[[], object]) -> None:
    """Every deadline function refuses a datetime without a time zone."""
    with pytest.raises(ValueError, match="naive"):
        call()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: due_at(FRIDAY_5PM, -HOUR, Clock.CALENDAR, CALENDAR), "negative"),
        (lambda: reminder_due(FRIDAY_5PM, FRIDAY_5PM, 1.5, Clock.CALENDAR, CALENDAR), "share"),
        (
            lambda: reminder_due(FRIDAY_5PM, FRIDAY_5PM - HOUR, 0.5, Clock.CALENDAR, CALENDAR),
            "before",
        ),
    ],
)
def test_impossible_arguments_are_refused(call: Callable[[], object], message: str) -> None:
    """Negative targets, shares beyond the target and deadlines before their start fail."""
    with pytest.raises(ValueError, match=message):
        call()


# --- Properties --------------------------------------------------------------------------

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")
# Hypothesis takes naive bounds and attaches the zone itself.
EARLIEST = datetime(2019, 1, 1)  # noqa: DTZ001
LATEST = datetime(2029, 12, 31)  # noqa: DTZ001
instants = st.datetimes(EARLIEST, LATEST, timezones=st.just(UTC))
calendars = st.sampled_from(ZONES).map(lambda zone: BusinessCalendar(ZoneInfo(zone)))
targets = st.timedeltas(timedelta(0), timedelta(days=3))
shares = st.floats(0, 1)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@PROPERTY_SETTINGS
@given(instants, targets, st.sampled_from(Clock), calendars)
def test_remaining_at_start_is_the_target(
    start: datetime, target: timedelta, clock: Clock, calendar: BusinessCalendar
) -> None:
    """From an open start, the time left on the target's clock is the whole target."""
    start = calendar.next_opening(start) if clock is Clock.BUSINESS else start
    due = due_at(start, target, clock, calendar)
    assert remaining(start, due, clock, calendar) == target
    assert remaining(due, due, clock, calendar) == timedelta(0)


@PROPERTY_SETTINGS
@given(instants, targets, shares, st.sampled_from(Clock), calendars)
def test_reminder_falls_between_start_and_due(
    start: datetime, target: timedelta, share: float, clock: Clock, calendar: BusinessCalendar
) -> None:
    """A reminder is never before the start nor after the deadline, and leaves the right share."""
    due = due_at(start, target, clock, calendar)
    reminder = reminder_due(start, due, share, clock, calendar)
    assert start <= reminder <= due
    left = remaining(reminder, due, clock, calendar)
    assert abs(left - target * (1 - share)) <= timedelta(microseconds=2)
