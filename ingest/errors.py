"""Errors raised while ingesting mail.

Exception tree::

    IngestError
    ├── ParseError          permanent: the message goes to quarantine with ``reason``
    ├── PoisonError         out of time or memory: counted, quarantined after max_attempts
    └── TemporaryIngestError transient: retry later (database locked, server gone)
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every ingest error."""


class ParseError(IngestError):
    """A message that cannot be turned into a case message; it is quarantined."""

    def __init__(self, reason: str, *, part: str | None = None) -> None:
        super().__init__(reason if part is None else f"{reason} (part {part})")
        self.reason = reason
        self.part = part


class TemporaryIngestError(IngestError):
    """A failure that will likely pass: the caller should retry or answer 4xx."""


class PoisonError(IngestError):
    """The analysis of one message ran out of time or memory, or crashed its worker."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind  # "timeout", "memory" or "crashed"
        self.reason = reason
