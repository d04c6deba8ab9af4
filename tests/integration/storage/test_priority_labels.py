"""The site's priority labels on a real SQLite file: what counts as the team's decision."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from storage.models import Case, CaseEvent, Message
from storage.priority_labels import site_labels

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REFS = itertools.count(2000)


def case(
    s: Session,
    *,
    priority: str = "medium",
    status: str = "open",
    answered: bool = False,
    events: tuple[str, ...] = (),
    texts: tuple[tuple[str, str], ...] = (("in", "first"),),
) -> int:
    """A case with messages (direction, text) in order and audit events of those kinds."""
    row = Case(
        ref=next(REFS),
        subject="Subject",
        status=status,
        priority=priority,
        plan="standard",
        customer_address="c@x.example",
        opened_at=NOW,
        updated_at=NOW,
        first_responded_at=NOW if answered else None,
    )
    s.add(row)
    s.flush()
    for direction, text in texts:
        s.add(Message(case_id=row.id, direction=direction, subject=f"S {text}", text=text, at=NOW))
    for kind in events:
        s.add(CaseEvent(case_id=row.id, at=NOW, kind=kind, actor="alice@team.example"))
    s.flush()
    return row.ref


def test_corrected_confirmed_and_the_rest(sessions: sessionmaker[Session]) -> None:
    """A recategorized case is corrected; an answered finished one confirmed; others nothing."""
    with sessions.begin() as s:
        corrected = case(s, priority="high", events=("priority_changed",))
        confirmed = case(s, priority="low", status="solved", answered=True)
        closed = case(s, status="closed", answered=True)
        case(s, status="solved")  # never answered: nobody looked at its priority
        case(s, status="open", answered=True)  # still open: not decided yet
        case(s, status="closed", answered=True, events=("imported",))  # history, never shown
        reopened_fix = case(
            s, priority="low", status="closed", answered=True, events=("priority_changed",)
        )
    with sessions() as s:
        found = {label.ref: (label.label, label.source) for label in site_labels(s)}
    assert found == {
        corrected: ("high", "corrected"),
        confirmed: ("low", "confirmed"),
        closed: ("medium", "confirmed"),
        reopened_fix: ("low", "corrected"),
    }


def test_the_text_is_the_customers_first_message(sessions: sessionmaker[Session]) -> None:
    """An agent's note before the customer's mail, or replies after it, are not the text."""
    with sessions.begin() as s:
        ref = case(
            s,
            events=("priority_changed",),
            texts=(("out", "agent opened"), ("in", "the problem"), ("in", "a follow-up")),
        )
        case(s, events=("priority_changed",), texts=(("out", "only ours"),))  # no customer text
    with sessions() as s:
        (label,) = site_labels(s)
    assert (label.ref, label.subject, label.text) == (ref, "S the problem", "the problem")
