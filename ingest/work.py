"""One message's unit of work in the process stage: its row, its analysis and the time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from ingest.mime.parsed import ParsedMail
    from ingest.priority.inference import PriorityDecision
    from ingest.triage.classify import Classification


class InboundRow(Protocol):
    """What a step reads of the raw message's row (``storage.inbound.Pending``, or the row)."""

    @property
    def id(self) -> int:
        """The row's id."""

    @property
    def mail_from(self) -> str:
        """The SMTP envelope sender ("" for the null sender or another source)."""

    @property
    def rcpt_to(self) -> list[str]:
        """The SMTP envelope recipients."""


@dataclass(frozen=True)
class UnitOfWork:
    """One message's case work: its row, what the analysis made of it, and the time."""

    row: InboundRow
    mail: ParsedMail
    verdict: Classification
    now: datetime
    # The message's priority: the analysis's result, or computed (bounded) when first asked
    # for: only a message that opens a case needs one.
    priority: Callable[[], PriorityDecision]
