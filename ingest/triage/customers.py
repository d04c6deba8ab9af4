"""Which customer a sender belongs to, and the plan in force for a case it opens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import date

    from sla.business_hours import WorkingHours


PREMIER = "premier"


@dataclass(frozen=True, slots=True)
class CustomerRule:
    """One ``[[customers]]`` entry.

    ``paid_through`` is the last day of a paid premier term: a customer whose
    ``plan`` was changed to a lower plan keeps premier until that day has passed
    (the policy: a downgrade takes effect at the end of the paid term).
    """

    name: str
    addresses: frozenset[str]
    domains: frozenset[str]
    plan: str
    timezone: str
    paid_through: date | None = None
    # Where this customer's notifications go instead of [agents] team_address.
    team_address: str = ""
    # The customer's own business hours; None: the configured [business_hours].
    hours: WorkingHours | None = None

    def plan_on(self, day: date) -> str:
        """The plan in force on ``day`` (the customer's local date)."""
        if self.paid_through is not None and day <= self.paid_through:
            return PREMIER
        return self.plan


@dataclass(frozen=True, slots=True)
class CustomerDirectory:
    """All customer rules plus the profile for senders that match none."""

    rules: tuple[CustomerRule, ...]
    default: CustomerRule

    def match(self, address: str) -> CustomerRule | None:
        """The rule for ``address``: exact address first, then the longest domain."""
        key = address.lower()
        for rule in self.rules:
            if key in rule.addresses:
                return rule
        domain = key.rpartition("@")[2]
        best: tuple[int, CustomerRule] | None = None
        for rule in self.rules:
            for d in rule.domains:
                if (domain == d or domain.endswith("." + d)) and (best is None or len(d) > best[0]):
                    best = (len(d), rule)
        return None if best is None else best[1]

    def hours_for(self, address: str) -> WorkingHours | None:
        """The business hours of the customer ``address`` belongs to, if it has its own."""
        rule = self.match(address)
        return rule.hours if rule else None

    def resolve(self, address: str) -> CustomerRule:
        """The matching rule, or the default customer profile."""
        return self.match(address) or self.default
