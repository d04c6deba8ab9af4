"""What processing one raw message did: the value the process stage returns and logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """What processing one raw message did, for the canonical log line."""

    status: str
    reason: str | None = None
    case_ref: int | None = None
    case_id: int | None = None
    opened: bool = False
    # A new case's (plan, priority), for the metrics: set by the step that opened it.
    opened_as: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
