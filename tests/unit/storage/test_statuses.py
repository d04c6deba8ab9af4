"""The statuses' values are what the database, ``--json`` output and metrics labels hold."""

from __future__ import annotations

import json

from storage.statuses import SETTLED, InboundStatus, OutboxStatus


def test_inbound_statuses_keep_their_stored_values() -> None:
    """Existing rows stay readable: every inbound status is the string stored before."""
    assert [s.value for s in InboundStatus] == [
        "received",
        "held",
        "processed",
        "duplicate",
        "suppressed",
        "quarantined",
    ]


def test_outbox_statuses_keep_their_stored_values() -> None:
    """Existing rows stay readable: every outbox status is the string stored before."""
    assert [s.value for s in OutboxStatus] == ["queued", "sent", "failed", "suppressed"]


def test_settled_statuses_are_the_ends_of_processing() -> None:
    """A message is settled once processed, dropped, suppressed or quarantined; not before."""
    assert set(InboundStatus) - SETTLED == {InboundStatus.RECEIVED, InboundStatus.HELD}


def test_a_status_prints_and_serialises_as_its_plain_value() -> None:
    """Log lines, ``--json`` output and text tables show the value, not the member's name."""
    assert json.dumps({"status": OutboxStatus.SENT}) == '{"status": "sent"}'
    assert f"{InboundStatus.QUARANTINED}" == "quarantined"
    assert str(InboundStatus.RECEIVED) == "received"
