"""The circuit breaker in the sender: limits, machines and bounced addresses get nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import structlog
from sqlalchemy import select

from notifications.breaker import BreakerSettings
from notifications.render import build_environment
from notifications.sender import Sender
from notifications.transports import MaildirTransport
from storage import outbox, suppressions
from storage.engine import make_engine, session_factory
from storage.models import Case, CaseEvent, Outbox
from storage.schema import upgrade
from storage.statuses import InboundStatus
from tests.integration.notifications.test_sender import ACK_CONTEXT, SETTINGS

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    """A migrated SQLite database with one case."""
    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    upgrade(engine)
    factory = session_factory(engine)
    with factory.begin() as s:
        s.add(
            Case(
                ref=1042,
                priority="high",
                plan="standard",
                customer_address="ann@customer.example",
                opened_at=NOW,
                updated_at=NOW,
            )
        )
    return factory


def sender(tmp_path: Path, sessions: sessionmaker[Session], breaker: BreakerSettings) -> Sender:
    """A sender into a maildir with the given breaker."""
    settings = type(SETTINGS)(**{**SETTINGS.__dict__, "breaker": breaker})
    return Sender(
        sessions,
        MaildirTransport(tmp_path / "out"),
        build_environment(),
        settings,
        structlog.get_logger("test"),
    )


def queue(sessions: sessionmaker[Session], key: str, to: str, kind: str = "ack") -> None:
    """One outbox row for case 1042."""
    with sessions.begin() as s:
        case_id = s.scalars(select(Case.id)).one()
        outbox.enqueue(
            s,
            kind=kind,
            case_id=case_id,
            to_addrs=[to],
            subject="Re: x",
            template="ack",
            context=ACK_CONTEXT,
            message_id=f"<{key}@example.com>",
            in_reply_to=None,
            references=[],
            dedupe_key=key,
            now=NOW,
        )


def statuses(sessions: sessionmaker[Session]) -> list[tuple[str, str | None]]:
    """Each row's status and reason, in order."""
    with sessions() as s:
        return [(r.status, r.last_error) for r in s.scalars(select(Outbox).order_by(Outbox.id))]


def test_per_recipient_limit_holds_the_sixth_ack(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """A sender who makes us acknowledge five times in an hour gets no sixth acknowledgement."""
    for i in range(6):
        queue(sessions, f"ack{i}", "robot@customer.example")
    sent = sender(tmp_path, sessions, BreakerSettings(per_recipient=5, per_case=100)).run_once(NOW)
    assert sent == 5
    rows = statuses(sessions)
    assert [s for s, _ in rows] == ["sent"] * 5 + ["suppressed"]
    assert "per-recipient limit" in (rows[-1][1] or "")
    with sessions() as s:
        assert s.scalars(select(CaseEvent.kind)).all() == ["outbox_suppressed"]


def test_per_recipient_limit_is_exact_for_rows_due_together(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Each row's check counts the one delivered just before it, in the same pass."""
    for i in range(3):
        queue(sessions, f"a{i}", "ann@customer.example")
        queue(sessions, f"b{i}", "bob@customer.example")
    sent = sender(tmp_path, sessions, BreakerSettings(per_recipient=2, per_case=100)).run_once(NOW)
    assert sent == 4
    rows = statuses(sessions)
    assert [s for s, _ in rows] == ["sent"] * 4 + ["suppressed"] * 2
    assert all("per-recipient limit" in (reason or "") for _, reason in rows[4:])
    assert len(list((tmp_path / "out" / "new").iterdir())) == 4


def test_window_passes_and_mail_flows_again(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Once the window has passed, the same recipient may be answered again."""
    for i in range(2):
        queue(sessions, f"w{i}", "ann@customer.example")
    s = sender(tmp_path, sessions, BreakerSettings(per_recipient=1, per_case=100))
    assert s.run_once(NOW) == 1
    queue(sessions, "later", "ann@customer.example")
    assert s.run_once(NOW + timedelta(hours=2)) == 1


def test_machines_and_bounced_addresses_get_nothing(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Mail to mailer-daemon or to an address that bounced permanently is held back."""
    with sessions.begin() as s:
        suppressions.suppress(
            s, "Gone@Customer.example", "bounced: 5.1.1", NOW, NOW + timedelta(days=7)
        )
    queue(sessions, "m1", "MAILER-DAEMON@relay.example")
    queue(sessions, "m2", "gone@customer.example")
    queue(sessions, "m3", "ann@customer.example", kind="relay")
    assert sender(tmp_path, sessions, BreakerSettings()).run_once(NOW) == 1
    rows = statuses(sessions)
    assert [s for s, _ in rows] == ["suppressed", "suppressed", "sent"]
    assert "system address" in (rows[0][1] or "")
    assert "bounced: 5.1.1" in (rows[1][1] or "")


def test_suppression_expires(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """A bounce suppression ends at its time; mail flows to the address again."""
    with sessions.begin() as s:
        suppressions.suppress(s, "gone@customer.example", "bounced", NOW, NOW + timedelta(days=1))
    queue(sessions, "e1", "gone@customer.example")
    assert sender(tmp_path, sessions, BreakerSettings()).run_once(NOW + timedelta(days=2)) == 1


def test_per_case_limit_stops_a_loop(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """However the recipients vary, a case that already sent its share this hour sends no more."""
    for i in range(4):
        queue(sessions, f"c{i}", f"team{i}@support.example", kind="notify")
    assert (
        sender(tmp_path, sessions, BreakerSettings(per_recipient=100, per_case=3)).run_once(NOW)
        == 3
    )
    assert "per-case limit" in (statuses(sessions)[-1][1] or "")


DSN = """From: MAILER-DAEMON@mx.customer.example
To: support@example.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn1@mx.customer.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.example

Final-Recipient: rfc822; gone@customer.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown
--B--
"""


def test_permanent_bounce_suppresses_its_recipient(tmp_path: Path) -> None:
    """Processing a permanent bounce records its recipient; the sender then holds mail to it."""
    from mail2case import app  # noqa: PLC0415 - the composition root builds the processor
    from mail2case.config.settings import config_from_mapping  # noqa: PLC0415
    from storage import inbound  # noqa: PLC0415

    config = config_from_mapping(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'p.db'}"},
            "support": {"address": "support@example.com"},
        }
    )
    engine, factory = app.open_database(config)
    with factory.begin() as s:
        row = inbound.add_inbound(s, raw=DSN.replace("\n", "\r\n").encode(), source="file", now=NOW)
        row_id = row.id
    outcome = app.build_processor(config, factory).handle(row_id, NOW)
    assert outcome is not None
    assert outcome.status == InboundStatus.SUPPRESSED
    with factory() as s:
        found = suppressions.suppressed(s, ["GONE@customer.example"], NOW)
        later = suppressions.suppressed(s, ["gone@customer.example"], NOW + timedelta(days=8))
    engine.dispose()
    assert "5.1.1" in found["gone@customer.example"]
    assert later == {}
