"""The statuses of raw inbound mail and of outbox rows, as the database columns hold them.

The columns are plain strings: each member's value is exactly what is stored, printed in
``--json`` output and used as a metrics label, so none of them may change.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args


class InboundStatus(StrEnum):
    """Where a raw message stands: ``received`` (or ``held``) until it is settled."""

    RECEIVED = "received"  # committed, waiting for the process stage
    HELD = "held"  # staged by an import, processed by the import itself (nothing sent)
    PROCESSED = "processed"  # added to a case
    DUPLICATE = "duplicate"  # the same message was processed before
    SUPPRESSED = "suppressed"  # automatic or looping mail: no case, nothing sent
    QUARANTINED = "quarantined"  # set aside with the reason, for a human


# What processing one message can end in; every other status is still pending.
SettledStatus = Literal[
    InboundStatus.PROCESSED,
    InboundStatus.DUPLICATE,
    InboundStatus.SUPPRESSED,
    InboundStatus.QUARANTINED,
]
SETTLED: frozenset[SettledStatus] = frozenset(get_args(SettledStatus))


class OutboxStatus(StrEnum):
    """Where an outgoing mail stands: ``queued`` until it is sent, given up on or held back."""

    QUEUED = "queued"  # due at its next_attempt_at (or leased by a sender until then)
    SENT = "sent"  # the transport accepted it
    FAILED = "failed"  # given up on; an operator may retry it
    SUPPRESSED = "suppressed"  # held back for good by the circuit breaker, with the reason
