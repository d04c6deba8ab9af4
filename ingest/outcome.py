"""What processing one raw message did: the value the process stage returns and logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from storage.statuses import InboundStatus

if TYPE_CHECKING:
    from storage.models import Case
    from storage.statuses import SettledStatus


@dataclass(frozen=True)
class Outcome:
    """What processing one raw message did, for the canonical log line."""

    status: SettledStatus  # what the raw message's row is settled as
    reason: str | None = None
    case_ref: int | None = None
    case_id: int | None = None
    opened: bool = False
    # A new case's (plan, priority), for the metrics: set by the step that opened it.
    opened_as: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def processed(case: Case, *, opened: bool = False, extra: dict[str, Any] | None = None) -> Outcome:
    """A message added to ``case`` (a new one when ``opened``, with its plan and priority)."""
    return Outcome(
        InboundStatus.PROCESSED,
        case_ref=case.ref,
        case_id=case.id,
        opened=opened,
        opened_as=(case.plan, case.priority) if opened else None,
        extra=extra or {},
    )
