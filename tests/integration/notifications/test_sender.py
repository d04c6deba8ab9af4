"""The outbox sender on a real SQLite file, against a real aiosmtpd sink and a maildir."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from sqlalchemy import select
from structlog.testing import capture_logs

from notifications.render import build_environment
from notifications.sender import Sender, SenderSettings
from notifications.transports import MaildirTransport, SmtpTransport
from storage import outbox
from storage.models import Outbox
from storage.statuses import OutboxStatus
from tests.support.smtp_sink import SmtpSink

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import EmailMessage
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

    from notifications.transports import Transport

NOW = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
SUPPORT = "support@example.com"
SETTINGS = SenderSettings(
    from_name="Example Support",
    from_addr=SUPPORT,
    loop_marker=SUPPORT,
    max_attempts=3,
    backoff_base=timedelta(seconds=30),
    backoff_max=timedelta(minutes=10),
)
ACK_CONTEXT: dict[str, Any] = {
    "case_ref": 1042,
    "ref_token": "[#1042]",
    "subject": "Database down",
    "customer_name": "Ann Customer",
    "customer_address": "ann@customer.example",
    "plan": "standard",
    "priority": "high",
    "priority_reason": "customer stated High",
    "first_response_words": "within 4 business hours",
    "first_response_due": "2026-11-30T15:00:00+00:00",
    "first_response_due_local": "Mon 30 Nov 2026 16:00 CET",
    "support_name": "Example Support",
    "support_address": SUPPORT,
}


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A plain aiosmtpd relay sink."""
    with SmtpSink() as running:
        yield running


def relay(sink: SmtpSink) -> SmtpTransport:
    """An SMTP transport to ``sink``."""
    return SmtpTransport(sink.host, sink.port, starttls=False, timeout=5.0)


def make_sender(
    sessions: sessionmaker[Session], transport: Transport, settings: SenderSettings = SETTINGS
) -> Sender:
    """A sender with the packaged templates and a seeded jitter."""
    return Sender(
        sessions,
        transport,
        build_environment(),
        settings,
        structlog.get_logger("test.sender"),
        rng=random.Random(1),
    )


def enqueue(sessions: sessionmaker[Session], key: str = "ack:case:1042", **kw: Any) -> bool:
    """Queue one acknowledgement-like row in its own transaction."""
    values: dict[str, Any] = {
        "kind": "ack",
        "case_id": None,
        "to_addrs": ["ann@customer.example"],
        "subject": "Re: [#1042] Database down",
        "template": "ack",
        "context": ACK_CONTEXT,
        "message_id": "<ack-1042.abc@example.com>",
        "in_reply_to": "<orig@customer.example>",
        "references": ["<orig@customer.example>"],
        "dedupe_key": key,
        "now": NOW,
    } | kw
    with sessions.begin() as s:
        return outbox.enqueue(s, **values)


def only_row(sessions: sessionmaker[Session]) -> Outbox:
    """The single outbox row."""
    with sessions() as s:
        return s.scalars(select(Outbox)).one()


def test_enqueue_is_idempotent_on_dedupe_key(sessions: sessionmaker[Session]) -> None:
    """A second enqueue with the same key adds nothing and says so."""
    assert enqueue(sessions) is True
    assert enqueue(sessions, subject="different") is False
    with sessions.begin() as s:
        assert (
            outbox.enqueue(
                s,
                kind="ack",
                case_id=None,
                to_addrs=["x@y.example"],
                subject="again",
                template="ack",
                context={},
                message_id="<other@example.com>",
                in_reply_to=None,
                references=[],
                dedupe_key="ack:case:1042",
                now=NOW,
            )
            is False
        )
    row = only_row(sessions)
    assert (row.subject, row.status, row.attempts, row.next_attempt_at) == (
        "Re: [#1042] Database down",
        "queued",
        0,
        NOW,
    )


def test_sent_mail_arrives_with_its_headers(
    sessions: sessionmaker[Session], sink: SmtpSink
) -> None:
    """run_once sends a due row to the relay with threading and RFC 3834 headers."""
    enqueue(sessions)
    assert make_sender(sessions, relay(sink)).run_once(NOW) == 1
    (delivery,) = sink.deliveries
    assert delivery.mail_from == SUPPORT
    assert delivery.rcpt_tos == ("ann@customer.example",)
    msg: EmailMessage = delivery.message()
    assert msg["From"].addresses[0].display_name == "Example Support"
    assert msg["Reply-To"] == SUPPORT
    assert msg["Subject"] == "Re: [#1042] Database down"
    assert msg["Message-ID"] == "<ack-1042.abc@example.com>"
    assert msg["In-Reply-To"] == "<orig@customer.example>"
    assert msg["References"] == "<orig@customer.example>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Loop"] == SUPPORT
    assert msg["Date"].datetime == NOW
    row = only_row(sessions)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 1, NOW, None)


def test_sent_row_is_not_sent_again(sessions: sessionmaker[Session], sink: SmtpSink) -> None:
    """A second pass finds nothing to send."""
    enqueue(sessions)
    sender = make_sender(sessions, relay(sink))
    assert sender.run_once(NOW) == 1
    assert sender.run_once(NOW + timedelta(hours=1)) == 0
    assert len(sink.deliveries) == 1


def test_row_not_yet_due_waits(sessions: sessionmaker[Session], sink: SmtpSink) -> None:
    """A row whose next attempt is in the future is left alone."""
    enqueue(sessions, now=NOW + timedelta(minutes=5))
    assert make_sender(sessions, relay(sink)).run_once(NOW) == 0
    assert sink.deliveries == []


def test_temporary_failure_schedules_a_retry_that_later_succeeds(
    sessions: sessionmaker[Session], sink: SmtpSink
) -> None:
    """451 keeps the row queued with a backoff; a later pass at a later time sends it."""
    enqueue(sessions)
    sender = make_sender(sessions, relay(sink))
    sink.handler.data_reply = "451 4.3.0 Try again later"
    with capture_logs() as logs:
        assert sender.run_once(NOW) == 0
    row = only_row(sessions)
    assert (row.status, row.attempts) == ("queued", 1)
    assert NOW < row.next_attempt_at <= NOW + SETTINGS.backoff_base
    assert row.last_error is not None
    assert "451" in row.last_error
    assert [(e["event"], e["log_level"]) for e in logs] == [("outbox.retry_scheduled", "warning")]
    assert sender.run_once(NOW) == 0  # not due again yet
    sink.handler.data_reply = "250 OK"
    assert sender.run_once(NOW + SETTINGS.backoff_max) == 1
    row = only_row(sessions)
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(sink.deliveries) == 1


def test_temporary_failures_give_up_after_max_attempts(
    sessions: sessionmaker[Session], sink: SmtpSink
) -> None:
    """After max_attempts temporary failures the row is failed, with the reason."""
    enqueue(sessions)
    sender = make_sender(sessions, relay(sink))
    sink.handler.data_reply = "421 4.7.0 Busy"
    for hour in range(SETTINGS.max_attempts):
        sender.run_once(NOW + timedelta(hours=hour))
    row = only_row(sessions)
    assert (row.status, row.attempts) == ("failed", SETTINGS.max_attempts)
    assert row.last_error is not None
    assert row.last_error.startswith(f"gave up after {SETTINGS.max_attempts} attempts")


def test_permanent_failure_fails_the_row(sessions: sessionmaker[Session], sink: SmtpSink) -> None:
    """5xx fails the row at once and logs outbox.failed with its ids."""
    enqueue(sessions)
    sink.handler.data_reply = "554 5.7.1 Rejected"
    with capture_logs() as logs:
        assert make_sender(sessions, relay(sink)).run_once(NOW) == 0
    row = only_row(sessions)
    assert (row.status, row.attempts) == ("failed", 1)
    (event,) = logs
    assert (event["event"], event["log_level"]) == ("outbox.failed", "error")
    assert (event["outbox_id"], event["kind"], event["case_id"]) == (row.id, "ack", None)
    assert "554" in event["error"]


def test_template_error_fails_the_row_and_the_pass_goes_on(
    sessions: sessionmaker[Session], sink: SmtpSink
) -> None:
    """A row whose template cannot render fails; the rows behind it are still sent."""
    enqueue(sessions, key="bad", template="no-such-template")
    enqueue(sessions, key="good", now=NOW + timedelta(seconds=1))
    assert make_sender(sessions, relay(sink)).run_once(NOW + timedelta(seconds=1)) == 1
    with sessions() as s:
        statuses = dict(s.execute(select(Outbox.dedupe_key, Outbox.status)).all())
    assert statuses == {"bad": "failed", "good": "sent"}


def test_sent_log_has_ids_but_no_body(sessions: sessionmaker[Session], sink: SmtpSink) -> None:
    """outbox.sent carries outbox_id, kind and case_id, and nothing of the mail's text."""
    enqueue(sessions)
    with capture_logs() as logs:
        make_sender(sessions, relay(sink)).run_once(NOW)
    (event,) = logs
    assert event["event"] == "outbox.sent"
    assert {"outbox_id", "kind", "case_id", "message_id"} <= event.keys()
    assert "Database down" not in repr(event)


@pytest.mark.parametrize(
    ("kind", "auto_submitted"),
    [("notify", "auto-generated"), ("reminder", "auto-generated"), ("relay", None)],
)
def test_auto_submitted_follows_the_kind(
    sessions: sessionmaker[Session], sink: SmtpSink, kind: str, auto_submitted: str | None
) -> None:
    """Notifications are auto-generated; a relayed human reply carries no Auto-Submitted."""
    enqueue(sessions, kind=kind)
    make_sender(sessions, relay(sink)).run_once(NOW)
    (delivery,) = sink.deliveries
    assert delivery.message()["Auto-Submitted"] == auto_submitted


def test_batch_size_bounds_one_pass(sessions: sessionmaker[Session], sink: SmtpSink) -> None:
    """One pass sends at most batch_size rows, oldest due first."""
    for i in range(5):
        enqueue(sessions, key=f"k{i}", now=NOW + timedelta(seconds=i), subject=f"s{i}")
    settings = SenderSettings(from_name="S", from_addr=SUPPORT, loop_marker=SUPPORT, batch_size=3)
    sender = make_sender(sessions, relay(sink), settings)
    assert sender.run_once(NOW + timedelta(minutes=1)) == 3
    assert [d.message()["Subject"] for d in sink.deliveries] == ["s0", "s1", "s2"]
    assert sender.run_once(NOW + timedelta(minutes=1)) == 2


def test_maildir_transport_path(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """With the default maildir transport the acknowledgement lands in new/."""
    enqueue(sessions)
    maildir = tmp_path / "outgoing"
    assert make_sender(sessions, MaildirTransport(maildir)).run_once(NOW) == 1
    (path,) = (maildir / "new").iterdir()
    assert b"Message-ID: <ack-1042.abc@example.com>" in path.read_bytes()
    assert only_row(sessions).status == "sent"


def test_retry_now_requeues_a_failed_row(sessions: sessionmaker[Session], sink: SmtpSink) -> None:
    """`outbox retry` queues a failed row again with a fresh budget, and it is then sent."""
    enqueue(sessions)
    sink.handler.data_reply = "550 5.1.1 No such user"
    sender = make_sender(sessions, relay(sink))
    sender.run_once(NOW)
    row_id = only_row(sessions).id
    later = NOW + timedelta(hours=1)
    with sessions.begin() as s:
        assert outbox.counts(s) == {"queued": 0, "sent": 0, "failed": 1}
        assert outbox.retry_now(s, row_id, later) is True
        assert outbox.retry_now(s, row_id, later) is False  # queued, not failed
        assert outbox.retry_now(s, row_id + 100, later) is False
    sink.handler.data_reply = "250 OK"
    assert sender.run_once(later) == 1
    with sessions() as s:
        assert outbox.counts(s) == {"queued": 0, "sent": 1, "failed": 0}
        assert [r.id for r in outbox.list_rows(s, status=OutboxStatus.SENT)] == [row_id]


def test_savepoint_fallback_is_idempotent_too(sessions: sessionmaker[Session]) -> None:
    """The SAVEPOINT path (other dialects) also adds a key once and keeps the transaction."""
    values = {
        "kind": "ack",
        "to_addrs": ["a@b.example"],
        "template": "ack",
        "message_id": "<m@example.com>",
        "dedupe_key": "k",
        "created_at": NOW,
        "next_attempt_at": NOW,
    }
    with sessions.begin() as s:
        assert outbox._insert_in_savepoint(s, values) is True
        assert outbox._insert_in_savepoint(s, values) is False
        assert outbox._insert_in_savepoint(s, values | {"dedupe_key": "k2"}) is True
    with sessions() as s:
        assert outbox.counts(s)["queued"] == 2


class BrokenTransport:
    """A transport with a bug: it raises something no transport should."""

    def send(self, msg: EmailMessage, *, from_addr: str, to_addrs: Any) -> None:
        """Fail with an unexpected exception."""
        del msg, from_addr, to_addrs
        raise RuntimeError("bug in transport")


def test_unexpected_transport_error_backs_off_instead_of_blocking(
    sessions: sessionmaker[Session],
) -> None:
    """A transport bug is recorded on the row and retried later, not left at the queue's head."""
    enqueue(sessions)
    assert make_sender(sessions, BrokenTransport()).run_once(NOW) == 0
    row = only_row(sessions)
    assert (row.status, row.attempts) == ("queued", 1)
    assert row.next_attempt_at > NOW
    assert row.last_error == "RuntimeError: bug in transport"


def test_a_non_ascii_message_id_of_the_customer_does_not_stop_the_ack(
    sessions: sessionmaker[Session], sink: SmtpSink, tmp_path: Path
) -> None:
    """RFC 6532 lets a msg-id carry UTF-8; no header of ours can: the ack goes without it."""
    enqueue(
        sessions,
        in_reply_to="<grüße-1@kunde.example>",
        references=["<earlier@kunde.example>", "<grüße-1@kunde.example>"],
    )
    enqueue(sessions, key="ack:case:1043", in_reply_to="<grüße-2@kunde.example>", references=[])
    maildir = tmp_path / "outgoing"
    assert make_sender(sessions, MaildirTransport(maildir)).run_once(NOW) == 2
    with sessions() as s:
        assert {r.status for r in s.scalars(select(Outbox))} == {"sent"}
    mails = sorted(path.read_bytes() for path in (maildir / "new").iterdir())
    assert len(mails) == 2
    threaded = next(m for m in mails if b"earlier@" in m)
    assert b"References: <earlier@kunde.example>\n" in threaded
    assert b"In-Reply-To" not in threaded
    assert all(b"gr\xc3\xbc" not in m and "grüße" not in m.decode("ascii") for m in mails)
