"""Unit tests for plans, priorities and target wording."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sla.policy import (
    Clock,
    Plan,
    PlanTargets,
    Priority,
    SlaPolicy,
    TargetKind,
    default_policy,
    describe_target,
)

HOUR = timedelta(hours=1)


def _plan(name: str = "p", first: timedelta = HOUR, update: timedelta = HOUR) -> Plan:
    return Plan(
        name=name,
        clock=Clock.BUSINESS,
        first_response=dict.fromkeys(Priority, first),
        update=dict.fromkeys(Priority, update),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("high", Priority.HIGH),
        ("HIGH", Priority.HIGH),
        ("Medium", Priority.MEDIUM),
        ("  low\n", Priority.LOW),
    ],
)
def test_parse_accepts_any_case(text: str, expected: Priority) -> None:
    """A priority name parses whatever its case and surrounding blanks."""
    assert Priority.parse(text) is expected


@pytest.mark.parametrize("text", ["", "urgent", "hi", "1"])
def test_parse_rejects_unknown_names(text: str) -> None:
    """A word that names no priority is refused with the accepted names listed."""
    with pytest.raises(ValueError, match="expected one of high, medium, low"):
        Priority.parse(text)


def test_rank_orders_the_queue_most_urgent_first() -> None:
    """Sorting by rank puts high before medium before low."""
    ranks = {p: p.rank for p in Priority}
    assert ranks == {Priority.HIGH: 0, Priority.MEDIUM: 1, Priority.LOW: 2}
    assert sorted([Priority.LOW, Priority.HIGH, Priority.MEDIUM], key=lambda p: p.rank) == [
        Priority.HIGH,
        Priority.MEDIUM,
        Priority.LOW,
    ]


def test_enums_compare_equal_to_their_stored_strings() -> None:
    """Priorities and clocks are the plain strings that storage and config hold."""
    assert isinstance(Priority.HIGH, str)
    assert f"{Priority.HIGH}|{Clock.BUSINESS}" == "high|business"
    assert Clock("calendar") is Clock.CALENDAR


@pytest.mark.parametrize(
    ("plan", "kind", "priority", "hours"),
    [
        ("standard", "first", Priority.HIGH, 4),
        ("standard", "update", Priority.HIGH, 4),
        ("standard", "first", Priority.MEDIUM, 9),
        ("standard", "update", Priority.MEDIUM, 9),
        ("standard", "first", Priority.LOW, 18),
        ("standard", "update", Priority.LOW, 18),
        ("premier", "first", Priority.HIGH, 1),
        ("premier", "update", Priority.HIGH, 2),
        ("premier", "first", Priority.MEDIUM, 4),
        ("premier", "update", Priority.MEDIUM, 12),
        ("premier", "first", Priority.LOW, 8),
        ("premier", "update", Priority.LOW, 24),
    ],
)
def test_default_policy_matches_the_design_table(
    plan: str, kind: TargetKind, priority: Priority, hours: int
) -> None:
    """The default policy carries every target of the DESIGN.md table."""
    assert default_policy().plan(plan).target(kind, priority) == timedelta(hours=hours)


def test_default_policy_clocks_and_reminder_share() -> None:
    """Standard runs on business hours, premier round the clock, reminders at 75 %."""
    policy = default_policy()
    assert policy.plan("standard").clock is Clock.BUSINESS
    assert policy.plan("premier").clock is Clock.CALENDAR
    assert policy.reminder_share == 0.75


def test_targets_returns_both_targets_of_a_priority() -> None:
    """A plan's targets for one priority pair its first-response and update targets."""
    premier = default_policy().plan("premier")
    assert premier.targets(Priority.MEDIUM) == PlanTargets(4 * HOUR, 12 * HOUR)


def test_plan_keeps_a_read_only_copy_of_its_targets() -> None:
    """Changing the caller's mapping after building a plan leaves the plan alone."""
    targets = dict.fromkeys(Priority, HOUR)
    plan = Plan("p", Clock.CALENDAR, targets, targets)
    targets[Priority.HIGH] = 99 * HOUR
    assert plan.target("first", Priority.HIGH) == HOUR
    with pytest.raises(TypeError):
        plan.first_response[Priority.HIGH] = HOUR  # type: ignore[index]


@pytest.mark.parametrize(
    ("first", "update", "message"),
    [
        ({Priority.HIGH: HOUR}, dict.fromkeys(Priority, HOUR), "no target for medium, low"),
        (dict.fromkeys(Priority, HOUR), dict.fromkeys(Priority, timedelta(0)), "must be positive"),
        (dict.fromkeys(Priority, -HOUR), dict.fromkeys(Priority, HOUR), "must be positive"),
    ],
)
def test_plan_rejects_missing_or_non_positive_targets(
    first: dict[Priority, timedelta], update: dict[Priority, timedelta], message: str
) -> None:
    """A plan must give every priority a positive target of each kind."""
    with pytest.raises(ValueError, match=message):
        Plan("p", Clock.BUSINESS, first, update)


def test_plan_rejects_an_empty_name() -> None:
    """A plan needs a name to be chosen by."""
    with pytest.raises(ValueError, match="name"):
        _plan(name="")


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1, 1.5])
def test_policy_rejects_reminder_share_outside_open_unit_interval(share: float) -> None:
    """A reminder must come after the start and before the target is due."""
    with pytest.raises(ValueError, match="reminder_share"):
        SlaPolicy(plans={"p": _plan()}, reminder_share=share)


def test_policy_rejects_no_plans_and_mismatched_keys() -> None:
    """A policy needs plans, each filed under its own name."""
    with pytest.raises(ValueError, match="at least one plan"):
        SlaPolicy(plans={})
    with pytest.raises(ValueError, match="differs"):
        SlaPolicy(plans={"gold": _plan(name="silver")})


def test_unknown_plan_names_the_known_plans() -> None:
    """Asking for a plan that does not exist lists the plans that do."""
    with pytest.raises(ValueError, match="expected one of standard, premier"):
        default_policy().plan("gold")


@pytest.mark.parametrize(
    ("target", "clock", "words"),
    [
        (timedelta(hours=4), Clock.BUSINESS, "within 4 business hours"),
        (timedelta(hours=9), Clock.BUSINESS, "within 9 business hours"),
        (timedelta(hours=1), Clock.BUSINESS, "within 1 business hour"),
        (timedelta(hours=1), Clock.CALENDAR, "within 1 hour"),
        (timedelta(hours=24), Clock.CALENDAR, "within 24 hours"),
        (timedelta(minutes=30), Clock.CALENDAR, "within 30 minutes"),
        (timedelta(minutes=1), Clock.CALENDAR, "within 1 minute"),
        (timedelta(minutes=90), Clock.CALENDAR, "within 90 minutes"),
        (timedelta(minutes=45), Clock.BUSINESS, "within 45 business minutes"),
        (timedelta(seconds=59), Clock.CALENDAR, "within 1 minute"),
        (timedelta(minutes=59, seconds=1), Clock.CALENDAR, "within 1 hour"),
    ],
)
def test_describe_target_in_words(target: timedelta, clock: Clock, words: str) -> None:
    """Targets read as whole hours where they can, otherwise as minutes rounded up."""
    assert describe_target(target, clock) == words


@pytest.mark.parametrize("target", [timedelta(0), -HOUR])
def test_describe_target_rejects_non_positive_targets(target: timedelta) -> None:
    """There are no words for a target that is already due."""
    with pytest.raises(ValueError, match="positive"):
        describe_target(target, Clock.CALENDAR)
