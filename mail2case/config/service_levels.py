"""What the SLA clocks run on: ``[business_hours]``, ``[plans]`` and the customers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ingest.triage.customers import CustomerDirectory, CustomerRule
from sla.business_hours import BusinessCalendar, WorkingHours
from sla.policy import Clock, Plan, Priority, SlaPolicy, default_policy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mail2case.config.reader import Section

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The calendar's own defaults: opening hours and working days are BusinessCalendar's.
_DEFAULT_CALENDAR = BusinessCalendar(ZoneInfo("UTC"))


@dataclass(frozen=True)
class BusinessHoursSettings:
    """``[business_hours]``: the team's calendar, and a country whose holidays it adds.

    The country's holidays are resolved when the calendar is used
    (``mail2case.app.team_calendar``): which they are depends on the year.
    """

    calendar: BusinessCalendar = _DEFAULT_CALENDAR
    holiday_country: str = ""
    holiday_subdivision: str = ""


def read_business_hours(s: Section) -> BusinessHoursSettings:
    """The team's calendar: zone, hours, working days and listed holidays."""
    hours = read_working_hours(s)
    listed = [s.as_date("holidays", v) for v in s.raw("holidays", [])]
    return BusinessHoursSettings(
        calendar=BusinessCalendar(
            tz=s.zone("timezone", _DEFAULT_CALENDAR.tz.key),
            opens=hours.opens,
            closes=hours.closes,
            weekdays=hours.weekdays,
            holidays=frozenset(day for day in listed if day is not None),
        ),
        holiday_country=s.str("holiday_country"),
        holiday_subdivision=s.str("holiday_subdivision"),
    )


def read_working_hours(s: Section) -> WorkingHours:
    """``start``, ``end`` and ``days`` of a business-hours table (the defaults if invalid)."""
    d = _DEFAULT_CALENDAR
    opens = s.clock_time("start", d.opens.isoformat("minutes"))
    closes = s.clock_time("end", d.closes.isoformat("minutes"))
    if opens >= closes:
        s.problem("end", "must be later than start", closes.isoformat("minutes"))
        opens, closes = d.opens, d.closes
    default_days = tuple(WEEKDAYS[i] for i in sorted(d.weekdays))
    days = s.str_list("days", default_days)
    bad = [day for day in days if day.lower() not in WEEKDAYS]
    if bad or not days:
        s.problem("days", "must be a non-empty list of mon, tue, wed, thu, fri, sat, sun", days)
        days = default_days
    weekdays = frozenset(WEEKDAYS.index(day.lower()) for day in days)
    return WorkingHours(opens=opens, closes=closes, weekdays=weekdays)


def read_policy(plans: Section, sla: Section) -> SlaPolicy:
    """The plans (the built-in ones, changed or added to) and ``[sla] reminder_share``."""
    defaults = default_policy()
    names = set(defaults.plans) | set(plans.data)
    built = {name: _plan(plans.table(name), defaults.plans.get(name)) for name in sorted(names)}
    share = sla.number("reminder_share", defaults.reminder_share, 0.01, 0.99)
    return SlaPolicy(plans=built, reminder_share=share)


def _plan(s: Section, default: Plan | None) -> Plan:
    name = s.path.rpartition(".")[2]
    clock = Clock(
        s.choice("clock", default.clock if default else "business", ("business", "calendar"))
    )
    first = _hours(s, "first_response_hours", default.first_response if default else None)
    update = _hours(s, "update_hours", default.update if default else None)
    return Plan(name=name, clock=clock, first_response=first, update=update)


def _hours(
    s: Section, name: str, default: Mapping[Priority, timedelta] | None
) -> dict[Priority, timedelta]:
    table = s.table(name)
    fallback = default or {p: timedelta(hours=8) for p in Priority}
    if default is None and not table.data:
        s.problem(name, "must give hours for high, medium and low")
    return {
        p: timedelta(hours=table.number(p.value, fallback[p].total_seconds() / 3600, 0.01, 10000))
        for p in Priority
    }


def default_customers() -> CustomerDirectory:
    """No customers configured: every sender gets the default, standard in UTC."""
    return CustomerDirectory((), CustomerRule("", frozenset(), frozenset(), "standard", "UTC"))


def read_customers(root: Section, plans: frozenset[str]) -> CustomerDirectory:
    """``[default_customer]`` and the ``[[customers]]``, each naming a configured plan."""
    default = _customer(root.table("default_customer"), plans, is_default=True)
    rules = tuple(_customer(t, plans, is_default=False) for t in root.tables("customers"))
    return CustomerDirectory(rules=rules, default=default)


def _customer(s: Section, plans: frozenset[str], *, is_default: bool) -> CustomerRule:
    name = s.str("name", "" if is_default else s.path)
    plan = s.str("plan", "standard")
    if plan not in plans:
        s.problem("plan", f"no such plan; configured plans are {', '.join(sorted(plans))}", plan)
        plan = "standard" if "standard" in plans else min(plans)
    tz = s.zone("timezone")
    addresses = () if is_default else s.str_list("addresses")
    domains = () if is_default else s.str_list("domains")
    if not is_default and not addresses and not domains:
        s.problem("addresses", "a customer needs addresses or domains to match senders")
    return CustomerRule(
        name=name,
        addresses=frozenset(a.lower() for a in addresses),
        domains=frozenset(d.lower().lstrip("@") for d in domains),
        plan=plan,
        timezone=tz.key,
        paid_through=s.optional_date("paid_through"),
        team_address="" if is_default else s.str("team_address"),
        hours=read_working_hours(s.table("business_hours")) if "business_hours" in s.data else None,
    )
