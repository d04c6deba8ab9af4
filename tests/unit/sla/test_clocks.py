"""Unit and property tests for the SLA clock transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sla.business_hours import BusinessCalendar
from sla.clocks import (
    CaseClocks,
    ClockChange,
    ClockTerms,
    Decision,
    Ended,
    Rescheduled,
    RunningClock,
    Started,
    Status,
    describe_remaining,
    on_agent_reply,
    on_customer_reply,
    on_opened,
    on_priority_change,
    on_status,
)
from sla.policy import Priority, default_policy

POLICY = default_policy()
CALENDAR = BusinessCalendar(ZoneInfo("Europe/Berlin"))
PREMIER = ClockTerms(POLICY.plan("premier"), Priority.HIGH, CALENDAR, 0.75)
STANDARD = ClockTerms(POLICY.plan("standard"), Priority.HIGH, CALENDAR, 0.75)
HOUR = timedelta(hours=1)
# Monday 2024-06-03, 10:00 in Berlin (UTC+2).
T0 = datetime(2024, 6, 3, 8, tzinfo=UTC)
T1 = T0 + 30 * timedelta(minutes=1)

FIRST = RunningClock("first", T0, T0 + HOUR)
UPDATE = RunningClock("update", T0, T0 + 2 * HOUR)


def started(kind: str, at: datetime, target: timedelta) -> Started:
    """A premier clock started at `at`: due `target` later, reminded at three quarters."""
    assert kind in {"first", "update"}
    return Started("first" if kind == "first" else "update", at, at + target, at + target * 0.75)


def case(status: Status, *running: RunningClock, answered: bool = False) -> CaseClocks:
    """A case's clock state."""
    return CaseClocks(status, answered, running)


def test_opening_starts_the_first_response_clock() -> None:
    """A new premier High case owes a first response within one calendar hour."""
    assert on_opened(PREMIER, T0) == Decision((started("first", T0, HOUR),))


def test_opening_a_standard_case_counts_business_hours() -> None:
    """A standard case opened on Friday evening is due on Monday, reminded on Monday too."""
    friday_evening = datetime(2024, 6, 7, 17, tzinfo=UTC)  # 19:00 in Berlin, closed
    (change,) = on_opened(STANDARD, friday_evening).changes
    assert isinstance(change, Started)
    assert change.due_at == datetime(2024, 6, 10, 11, tzinfo=UTC)  # Monday 13:00 Berlin
    assert change.remind_at == datetime(2024, 6, 10, 10, tzinfo=UTC)  # 3 of 4 business hours


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(
            case(Status.OPEN, FIRST),
            (Ended("first", T1, "met"), started("update", T1, 2 * HOUR)),
            id="first-reply-meets-first-and-starts-update",
        ),
        pytest.param(
            case(Status.OPEN, UPDATE, answered=True),
            (Ended("update", T1, "met"), started("update", T1, 2 * HOUR)),
            id="later-reply-restarts-update-from-its-own-time",
        ),
        pytest.param(
            case(Status.PENDING, FIRST),
            (Ended("first", T1, "met"),),
            id="reply-on-pending-case-meets-first-but-owes-no-update",
        ),
        pytest.param(case(Status.SOLVED, answered=True), (), id="reply-on-solved-case-no-clock"),
    ],
)
def test_agent_reply(state: CaseClocks, expected: tuple[ClockChange, ...]) -> None:
    """A public agent reply meets what runs and, on an open case, owes the next update."""
    assert on_agent_reply(PREMIER, state, T1) == Decision(expected)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(case(Status.OPEN, UPDATE, answered=True), Decision(), id="open-no-change"),
        pytest.param(
            case(Status.PENDING, answered=True),
            Decision((started("update", T1, 2 * HOUR),), Status.OPEN),
            id="pending-restarts-update-from-reply",
        ),
        pytest.param(
            case(Status.PENDING, FIRST),
            Decision((), Status.OPEN),
            id="pending-unanswered-first-keeps-running",
        ),
        pytest.param(
            case(Status.SOLVED, answered=True),
            Decision((started("update", T1, 2 * HOUR),), Status.OPEN),
            id="solved-reopens-with-update",
        ),
        pytest.param(
            case(Status.CLOSED),
            Decision((started("first", T1, HOUR),), Status.OPEN),
            id="closed-unanswered-reopens-owing-first-response",
        ),
    ],
)
def test_customer_reply(state: CaseClocks, expected: Decision) -> None:
    """A customer's message reopens a waiting or finished case and restarts the owed clock."""
    assert on_customer_reply(PREMIER, state, T1) == expected


@pytest.mark.parametrize(
    ("state", "new", "expected"),
    [
        pytest.param(
            case(Status.OPEN, UPDATE, answered=True),
            Status.PENDING,
            Decision((Ended("update", T1, "stopped"),), Status.PENDING),
            id="pending-stops-update",
        ),
        pytest.param(
            case(Status.OPEN, FIRST),
            Status.PENDING,
            Decision((), Status.PENDING),
            id="pending-keeps-first-response-owed",
        ),
        pytest.param(
            case(Status.OPEN, FIRST, UPDATE),
            Status.SOLVED,
            Decision(
                (Ended("first", T1, "stopped"), Ended("update", T1, "stopped")), Status.SOLVED
            ),
            id="solved-stops-every-clock",
        ),
        pytest.param(
            case(Status.PENDING, answered=True),
            Status.CLOSED,
            Decision((), Status.CLOSED),
            id="closed-from-pending",
        ),
        pytest.param(
            case(Status.PENDING, answered=True),
            Status.OPEN,
            Decision((started("update", T1, 2 * HOUR),), Status.OPEN),
            id="open-from-pending-restarts-update",
        ),
        pytest.param(
            case(Status.SOLVED),
            Status.OPEN,
            Decision((started("first", T1, HOUR),), Status.OPEN),
            id="reopened-unanswered-owes-first-response",
        ),
        pytest.param(
            case(Status.OPEN, UPDATE, answered=True), Status.OPEN, Decision(), id="same-status"
        ),
    ],
)
def test_status_change(state: CaseClocks, new: Status, expected: Decision) -> None:
    """Pending stops the update clock, solved and closed stop all, reopening restarts one."""
    assert on_status(PREMIER, state, new, T1) == expected


def test_priority_change_recomputes_from_each_clock_start() -> None:
    """High to Low on premier: the first response is due 8 hours after opening, not after now."""
    decision = on_priority_change(PREMIER, case(Status.OPEN, FIRST), Priority.LOW)
    due = T0 + 8 * HOUR
    assert decision == Decision((Rescheduled("first", T0, due, T0 + 6 * HOUR),))


def test_priority_change_on_business_clock_keeps_counting_business_hours() -> None:
    """A standard case raised from Low to High is due 4 business hours after its start."""
    low = ClockTerms(STANDARD.plan, Priority.LOW, CALENDAR, 0.75)
    (opened,) = on_opened(low, T0).changes
    assert isinstance(opened, Started)
    running = RunningClock("first", T0, opened.due_at)
    (moved,) = on_priority_change(low, case(Status.OPEN, running), Priority.HIGH).changes
    assert moved == Rescheduled("first", T0, T0 + 4 * HOUR, T0 + 3 * HOUR)


# Hypothesis takes naive bounds and attaches the zone itself.
EARLIEST = datetime(2020, 1, 1)  # noqa: DTZ001
LATEST = datetime(2030, 1, 1)  # noqa: DTZ001
instants = st.datetimes(EARLIEST, LATEST, timezones=st.just(UTC))
terms = st.builds(
    ClockTerms,
    plan=st.sampled_from(list(POLICY.plans.values())),
    priority=st.sampled_from(Priority),
    calendar=st.just(CALENDAR),
    reminder_share=st.floats(min_value=0.01, max_value=0.99),
)


def _running(decision: Decision) -> tuple[RunningClock, ...]:
    return tuple(
        RunningClock(c.kind, c.started_at, c.due_at)
        for c in decision.changes
        if isinstance(c, Started)
    )


@given(terms=terms, opened=instants, gap=st.timedeltas(timedelta(0), timedelta(days=20)))
def test_same_priority_changes_nothing(terms: ClockTerms, opened: datetime, gap: timedelta) -> None:
    """Recategorizing a case to the priority it already has moves no deadline."""
    first = _running(on_opened(terms, opened))
    state = case(Status.OPEN, *first)
    update = _running(on_agent_reply(terms, state, opened + gap))
    for running in (first, update):
        assert on_priority_change(terms, case(Status.OPEN, *running), terms.priority) == Decision()


@given(terms=terms, at=instants, answered=st.booleans(), status=st.sampled_from(Status))
def test_started_clocks_are_due_after_their_reminder_and_start(
    terms: ClockTerms, at: datetime, answered: bool, status: Status
) -> None:
    """Every clock a transition starts begins at the event, is reminded before it is due."""
    decisions = [
        on_opened(terms, at),
        on_agent_reply(terms, case(status, answered=answered), at),
        on_customer_reply(terms, case(status, answered=answered), at),
        *(on_status(terms, case(status, answered=answered), s, at) for s in Status),
    ]
    for change in (c for d in decisions for c in d.changes if isinstance(c, Started)):
        assert change.started_at == at
        assert at <= change.remind_at <= change.due_at
        assert change.due_at > at


@given(terms=terms, at=instants, status=st.sampled_from(Status))
def test_finished_cases_have_no_running_clock(
    terms: ClockTerms, at: datetime, status: Status
) -> None:
    """Solving or closing a case ends every running clock and starts none."""
    state = case(status, *_running(on_opened(terms, at)))
    for finished in (Status.SOLVED, Status.CLOSED):
        decision = on_status(terms, state, finished, at)
        assert not any(isinstance(c, Started) for c in decision.changes)
        ended = {c.kind for c in decision.changes if isinstance(c, Ended)}
        assert ended == ({c.kind for c in state.running} if status is not finished else set())


@pytest.mark.parametrize(
    ("left", "words"),
    [
        (timedelta(hours=1, minutes=10), "1 hour 10 minutes left"),
        (timedelta(hours=2), "2 hours left"),
        (timedelta(minutes=1, seconds=59), "1 minute left"),
        (timedelta(seconds=20), "due now"),
        (timedelta(seconds=-20), "due now"),
        (-timedelta(minutes=25), "overdue by 25 minutes"),
        (-timedelta(hours=27, minutes=1), "overdue by 27 hours 1 minute"),
    ],
)
def test_describe_remaining(left: timedelta, words: str) -> None:
    """Time left reads in whole hours and minutes, never rounded up."""
    assert describe_remaining(left) == words
