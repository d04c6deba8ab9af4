"""How much of each customer the database has seen: contacts, cases, open cases."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from storage.cases import OPEN_STATUSES
from storage.models import Case, Contact, Customer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

COUNTS = ("contacts", "cases", "open_cases")


def counts_by_customer(session: Session) -> dict[str, dict[str, int]]:
    """Contacts, cases and open cases per customer name; a count of none is left out."""
    found: dict[str, dict[str, int]] = {}
    contacts = (
        select(Customer.name, func.count(Contact.id))
        .join(Contact, Contact.customer_id == Customer.id)
        .group_by(Customer.name)
    )
    for name, n in session.execute(contacts):
        found.setdefault(name, {})["contacts"] = int(n)
    cases = (
        select(Customer.name, Case.status, func.count(Case.id))
        .join(Case, Case.customer_id == Customer.id)
        .group_by(Customer.name, Case.status)
    )
    for name, status, n in session.execute(cases):
        counts = found.setdefault(name, {})
        counts["cases"] = counts.get("cases", 0) + int(n)
        if status in OPEN_STATUSES:
            counts["open_cases"] = counts.get("open_cases", 0) + int(n)
    return found
