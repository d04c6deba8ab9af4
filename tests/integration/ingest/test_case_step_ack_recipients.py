"""Whom a new case's acknowledgement goes to: people yes, machines never (one shared rule)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from mail2case import app
from mail2case.config.settings import config_from_mapping
from storage import inbound
from storage.models import CaseEvent, Outbox

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sender", "acked"),
    [
        ("ann@client.example", True),
        ("postmasters-guild@client.example", True),  # a person, named like a machine
        ("noreen@client.example", True),
        ("noreply@shop.example", False),
        ("no_reply@shop.example", False),
        ("bounces-123@lists.example", False),
        ("MAILER-DAEMON@relay.example", False),
    ],
)
def test_a_new_case_is_acknowledged_to_people_only(
    tmp_path: Path, sender: str, *, acked: bool
) -> None:
    """The case step asks the circuit breaker's rule, so the two never disagree."""
    config = config_from_mapping(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'acks.db'}"},
            "support": {"address": "support@example.com"},
        }
    )
    engine, sessions = app.open_database(config)
    raw = (
        f"From: {sender}\r\nTo: support@example.com\r\nSubject: The export is broken\r\n"
        "Message-ID: <m1@client.example>\r\nDate: Thu, 26 Nov 2026 09:00:00 +0000\r\n\r\n"
        "Since this morning the export fails with an error.\r\n"
    ).encode()
    with sessions.begin() as s:
        row_id = inbound.add_inbound(s, raw=raw, source="smtp", now=NOW, mail_from=sender).id
    outcome = app.build_processor(config, sessions).handle(row_id, NOW)
    assert outcome is not None
    with sessions() as s:
        acks = s.scalars(select(Outbox.to_addrs).where(Outbox.kind == "ack")).all()
        events = s.scalars(select(CaseEvent.kind).where(CaseEvent.case_id == outcome.case_id))
        kinds = set(events)
    engine.dispose()
    if acked:
        assert outcome.extra == {"ack": True}
        assert acks == [[sender]]
    else:
        assert outcome.extra.get("ack") is False, outcome
        assert acks == []
        assert "ack_suppressed" in kinds
