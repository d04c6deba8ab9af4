"""The site's own priority labels: what the team decided about its cases.

Two kinds of evidence count (docs/priority.md says why):

- **corrected**: an agent recategorized the case (the ``#priority`` mail command,
  ``cases update --priority``, the board): its priority now is the team's label;
- **confirmed**: the case was answered and finished (solved or closed) and nobody
  changed its priority: the team lived with it.

Imported history is neither: its priority was never shown to anyone. The text is the
case's first message from the customer, which is what the model reads at intake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sqlalchemy import and_, exists, func, select

from storage.models import Case, CaseEvent, Message

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["FINISHED_STATUSES", "SiteLabel", "site_labels"]

FINISHED_STATUSES = ("solved", "closed")
Source = Literal["corrected", "confirmed"]


@dataclass(frozen=True, slots=True)
class SiteLabel:
    """One case's label, where it comes from, and the customer's first message."""

    ref: int
    label: str
    source: Source
    subject: str
    text: str


def site_labels(session: Session) -> list[SiteLabel]:
    """Every labelled case of this site, in reference order."""
    first_in = (
        select(Message.case_id, func.min(Message.id).label("message_id"))
        .where(Message.direction == "in")
        .group_by(Message.case_id)
        .subquery()
    )
    corrected = exists().where(
        and_(CaseEvent.case_id == Case.id, CaseEvent.kind == "priority_changed")
    )
    imported = exists().where(and_(CaseEvent.case_id == Case.id, CaseEvent.kind == "imported"))
    confirmed = and_(
        Case.status.in_(FINISHED_STATUSES), Case.first_responded_at.is_not(None), ~imported
    )
    query = (
        select(Case.ref, Case.priority, corrected.label("corrected"), Message.subject, Message.text)
        .join(first_in, first_in.c.case_id == Case.id)
        .join(Message, Message.id == first_in.c.message_id)
        .where(corrected | confirmed)
        .order_by(Case.ref)
    )
    return [
        SiteLabel(ref, priority, "corrected" if was_corrected else "confirmed", subject, text)
        for ref, priority, was_corrected, subject, text in session.execute(query)
    ]
