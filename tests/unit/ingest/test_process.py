"""The process stage's log events: one per way a message can be settled."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from ingest import process
from ingest.outcome import Outcome
from storage.statuses import SETTLED, InboundStatus, SettledStatus

EVENTS: dict[SettledStatus, str] = {
    InboundStatus.PROCESSED: "message.processed",
    InboundStatus.DUPLICATE: "message.duplicate_dropped",
    InboundStatus.SUPPRESSED: "message.suppressed",
    InboundStatus.QUARANTINED: "message.quarantined",
}


def test_every_settled_status_has_its_log_event() -> None:
    """Each way of settling a message logs under its own, unchanged event name."""
    assert {status: process.event_of(status) for status in SETTLED} == EVENTS


@pytest.mark.parametrize("status", sorted(EVENTS))
def test_an_outcome_is_logged_with_its_event(status: SettledStatus) -> None:
    """The canonical line names the event and the source; only a quarantine is a warning."""
    with capture_logs() as logs:
        process._log_outcome("smtp", Outcome(status, reason="why"))
    (line,) = logs
    assert (line["event"], line["source"], line["reason"]) == (EVENTS[status], "smtp", "why")
    expected = "warning" if status is InboundStatus.QUARANTINED else "info"
    assert line["log_level"] == expected
