"""Support plans, priorities and the response targets they promise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Self

if TYPE_CHECKING:
    from collections.abc import Mapping

TargetKind = Literal["first", "update"]


class Priority(StrEnum):
    """How urgent a case is; DESIGN.md defines each level."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Position in the queue: 0 is served first."""
        # Members are declared most urgent first, so declaration order is queue order.
        return list(Priority).index(self)

    @classmethod
    def parse(cls, text: str) -> Self:
        """Read a priority written in any case, with surrounding blanks ignored.

        Raises:
            ValueError: the text names no priority.
        """
        try:
            return cls(text.strip().lower())
        except ValueError:
            known = ", ".join(cls)
            raise ValueError(f"unknown priority {text!r} (expected one of {known})") from None


class Clock(StrEnum):
    """Which time counts towards a target."""

    BUSINESS = "business"
    CALENDAR = "calendar"


@dataclass(frozen=True)
class PlanTargets:
    """The two targets a plan sets for one priority."""

    first_response: timedelta
    update: timedelta


@dataclass(frozen=True)
class Plan:
    """A support plan: its clock and its targets per priority.

    The mappings are copied into read-only views, so a plan never changes after
    it is built.
    """

    name: str
    clock: Clock
    first_response: Mapping[Priority, timedelta]
    update: Mapping[Priority, timedelta]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("plan name must not be empty")
        for kind in ("first_response", "update"):
            targets = MappingProxyType(dict(getattr(self, kind)))
            _check_targets(self.name, kind, targets)
            # Frozen dataclass: the read-only copy replaces the caller's mapping.
            object.__setattr__(self, kind, targets)

    def target(self, kind: TargetKind, priority: Priority) -> timedelta:
        """Return the first-response or update target for `priority`."""
        return self.first_response[priority] if kind == "first" else self.update[priority]

    def targets(self, priority: Priority) -> PlanTargets:
        """Return both targets for `priority`."""
        return PlanTargets(self.first_response[priority], self.update[priority])


def _check_targets(plan: str, kind: str, targets: Mapping[Priority, timedelta]) -> None:
    missing = [p.value for p in Priority if p not in targets]
    if missing:
        raise ValueError(f"plan {plan!r}: {kind} has no target for {', '.join(missing)}")
    for priority, target in targets.items():
        if target <= timedelta(0):
            raise ValueError(f"plan {plan!r}: {kind}.{priority} must be positive (got {target})")


@dataclass(frozen=True)
class SlaPolicy:
    """The plans on offer and when to remind agents before a target is missed.

    `reminder_share` is the share of a target's time that may elapse before the
    reminder goes out: 0.75 reminds with a quarter of the time left.
    """

    plans: Mapping[str, Plan]
    reminder_share: float = 0.75

    def __post_init__(self) -> None:
        if not self.plans:
            raise ValueError("a policy needs at least one plan")
        for key, plan in self.plans.items():
            if key != plan.name:
                raise ValueError(f"plans.{key}: key differs from the plan's name {plan.name!r}")
        if not 0 < self.reminder_share < 1:
            raise ValueError(f"reminder_share must be between 0 and 1 (got {self.reminder_share})")
        object.__setattr__(self, "plans", MappingProxyType(dict(self.plans)))

    def plan(self, name: str) -> Plan:
        """Return the plan called `name`.

        Raises:
            ValueError: no plan has that name.
        """
        try:
            return self.plans[name]
        except KeyError:
            known = ", ".join(self.plans)
            raise ValueError(f"unknown plan {name!r} (expected one of {known})") from None


def default_policy() -> SlaPolicy:
    """Return the policy table of DESIGN.md: standard and premier."""
    standard = Plan(
        name="standard",
        clock=Clock.BUSINESS,
        first_response=_hours_per_priority(4, 9, 18),
        update=_hours_per_priority(4, 9, 18),
    )
    premier = Plan(
        name="premier",
        clock=Clock.CALENDAR,
        first_response=_hours_per_priority(1, 4, 8),
        update=_hours_per_priority(2, 12, 24),
    )
    return SlaPolicy(plans={"standard": standard, "premier": premier})


def _hours_per_priority(high: int, medium: int, low: int) -> dict[Priority, timedelta]:
    return {
        Priority.HIGH: timedelta(hours=high),
        Priority.MEDIUM: timedelta(hours=medium),
        Priority.LOW: timedelta(hours=low),
    }


def describe_target(target: timedelta, clock: Clock) -> str:
    """Return `target` in words for a customer, e.g. "within 4 business hours".

    Whole hours read as hours and anything else as minutes ("within 90 minutes").
    A fraction of a minute is rounded up, so the words never promise more than the
    target does.

    Raises:
        ValueError: the target is not positive.
    """
    if target <= timedelta(0):
        raise ValueError(f"a target must be positive (got {target})")
    minutes = math.ceil(target / timedelta(minutes=1))
    count, unit = (minutes // 60, "hour") if minutes % 60 == 0 else (minutes, "minute")
    plural = "" if count == 1 else "s"
    qualifier = "business " if clock is Clock.BUSINESS else ""
    return f"within {count} {qualifier}{unit}{plural}"
