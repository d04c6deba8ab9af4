"""Per-customer counts on a real SQLite file: contacts, cases, and the open ones among them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from storage.customer_counts import counts_by_customer
from storage.models import Case, Contact, Customer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REFS = itertools.count(1000)


def customer(s: Session, name: str, contacts: int, statuses: list[str]) -> None:
    """A customer with that many contacts and a case in each status."""
    row = Customer(name=name, created_at=NOW)
    s.add(row)
    s.flush()
    for i in range(contacts):
        s.add(Contact(address=f"c{i}@{name}.example", customer_id=row.id, created_at=NOW))
    for status in statuses:
        s.add(
            Case(
                ref=next(REFS),
                status=status,
                priority="low",
                plan="standard",
                customer_id=row.id,
                customer_address=f"c0@{name}.example",
                opened_at=NOW,
                updated_at=NOW,
            )
        )
        s.flush()


def test_counts_by_customer(sessions: sessionmaker[Session]) -> None:
    """Open and pending cases count as open; a customer with nothing counted is absent."""
    with sessions.begin() as s:
        customer(s, "acme", 2, ["open", "pending", "closed", "closed"])
        customer(s, "globex", 1, [])
        customer(s, "initech", 0, ["closed"])
        customer(s, "empty", 0, [])
    with sessions() as s:
        assert counts_by_customer(s) == {
            "acme": {"contacts": 2, "cases": 4, "open_cases": 2},
            "globex": {"contacts": 1},
            "initech": {"cases": 1},
        }
