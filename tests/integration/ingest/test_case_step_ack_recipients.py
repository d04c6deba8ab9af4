"""Whom a new case's acknowledgement goes to: people yes, machines never (one shared rule)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from mail2case import app
from mail2case.config.settings import config_from_mapping
from storage import inbound
from storage.models import CaseEvent, Outbox

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

    from ingest.outcome import Outcome
    from ingest.process import Processor

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Desk:
    """A support desk on a fresh SQLite database, with its process stage."""

    sessions: sessionmaker[Session]
    processor: Processor

    def process(self, raw: bytes, *, mail_from: str) -> Outcome:
        """Commit one raw message as the SMTP listener would, then process it."""
        with self.sessions.begin() as s:
            row_id = inbound.add_inbound(s, raw=raw, source="smtp", now=NOW, mail_from=mail_from).id
        outcome = self.processor.handle(row_id, NOW)
        assert outcome is not None
        return outcome

    def ack_recipients(self) -> list[list[str]]:
        """The recipients of every queued acknowledgement."""
        with self.sessions() as s:
            return [list(t) for t in s.scalars(select(Outbox.to_addrs).where(Outbox.kind == "ack"))]


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    """The desk whose address is support@example.com."""
    config = config_from_mapping(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'acks.db'}"},
            "support": {"address": "support@example.com"},
        }
    )
    engine, sessions = app.open_database(config)
    yield Desk(sessions, app.build_processor(config, sessions))
    engine.dispose()


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
def test_a_new_case_is_acknowledged_to_people_only(desk: Desk, sender: str, *, acked: bool) -> None:
    """The case step asks the circuit breaker's rule, so the two never disagree."""
    raw = (
        f"From: {sender}\r\nTo: support@example.com\r\nSubject: The export is broken\r\n"
        "Message-ID: <m1@client.example>\r\nDate: Thu, 26 Nov 2026 09:00:00 +0000\r\n\r\n"
        "Since this morning the export fails with an error.\r\n"
    ).encode()
    outcome = desk.process(raw, mail_from=sender)
    with desk.sessions() as s:
        events = s.scalars(select(CaseEvent.kind).where(CaseEvent.case_id == outcome.case_id))
        kinds = set(events)
    if acked:
        assert outcome.extra == {"ack": True}
        assert desk.ack_recipients() == [[sender]]
    else:
        assert outcome.extra.get("ack") is False, outcome
        assert desk.ack_recipients() == []
        assert "ack_suppressed" in kinds


@pytest.mark.parametrize(
    ("headers", "acked_to"),
    [
        ("", "ann@client.example"),
        ("Reply-To: helpdesk@client.example\r\n", "helpdesk@client.example"),  # own domain
        ("Reply-To: it@eu.client.example\r\n", "it@eu.client.example"),  # own subdomain
        ("Reply-To: victim@elsewhere.example\r\n", "ann@client.example"),  # a third party
        ("Reply-To: support+1042@example.com\r\n", "ann@client.example"),  # not ann's domain
    ],
)
def test_the_ack_goes_to_the_sender_or_a_reply_to_of_their_own_domain(
    desk: Desk, headers: str, acked_to: str | None
) -> None:
    """No acknowledgement carries a stranger's subject to a third party, or to ourselves."""
    raw = (
        f"From: Ann <ann@client.example>\r\n{headers}To: support@example.com\r\n"
        "Subject: Buy cheap pills at evil.example\r\nMessage-ID: <m2@client.example>\r\n\r\n"
        "Hello.\r\n"
    ).encode()
    desk.process(raw, mail_from="a@b.c")
    assert desk.ack_recipients() == ([[acked_to]] if acked_to else [])


def test_no_ack_goes_to_our_own_plus_address(desk: Desk) -> None:
    """Mail from support+anything@ (ours) is never acknowledged, with the reason recorded."""
    raw = (
        b"From: Someone <support+1042-x@example.com>\r\nTo: support@example.com\r\n"
        b"Subject: Hello\r\nMessage-ID: <m3@client.example>\r\n\r\nHello.\r\n"
    )
    desk.process(raw, mail_from="a@b.c")
    with desk.sessions() as s:
        details = s.scalars(select(CaseEvent.detail).where(CaseEvent.kind == "ack_suppressed"))
        reasons = list(details)
    assert desk.ack_recipients() == []
    assert reasons == ["suppressed: our own address support+1042-x@example.com"]
