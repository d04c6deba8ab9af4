"""Three instances on one PostgreSQL database: each message processed once, each mail sent once."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from sqlalchemy import func, select

from ingest.process import Processor
from mail2case.app import process_settings, team_calendar
from mail2case.config.settings import config_from_mapping
from notifications.breaker import BreakerSettings
from notifications.render import build_environment
from notifications.sender import Sender, SenderSettings
from notifications.transports import SmtpTransport
from storage import inbound, outbox
from storage.engine import make_engine, session_factory
from storage.models import Case, Inbound, Message, Outbox
from storage.schema import upgrade
from tests.support.smtp_sink import SmtpSink

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.orm import Session, sessionmaker

    from tests.support.postgres import PostgresServer

NOW = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
INSTANCES = 3
ORIGINALS = 240
REPLIES = 60
SENDERS = 40  # fewer senders than mails: instances race on the same contacts and customers
OUTBOX_ROWS = 300
SUPPORT = "support@example.com"
MAX_PASSES = 500
DEADLINE_SECONDS = 90.0
CONFIG: dict[str, Any] = {
    "support": {"address": SUPPORT, "name": "Example Support"},
    "customers": [
        {"name": "Acme", "domains": ["acme.example"], "plan": "premier", "timezone": "UTC"},
        {"name": "Globex", "domains": ["globex.example"], "plan": "standard", "timezone": "UTC"},
    ],
}


@pytest.fixture
def sessions(postgres: PostgresServer) -> Iterator[sessionmaker[Session]]:
    """Sessions on a fresh, migrated PostgreSQL database (one engine: instances share it)."""
    name = f"t_{uuid.uuid4().hex}"
    engine = make_engine(postgres.create_database(name))
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()
    postgres.drop_database(name)


def sender_address(i: int) -> str:
    """The customer address that writes mail ``i`` (three domains, SENDERS addresses)."""
    domain = ("acme.example", "globex.example", "other.example")[i % 3]
    return f"user{i % SENDERS}@{domain}"


def customer_mail(i: int) -> bytes:
    """A new customer request with a unique Message-ID."""
    return (
        f"From: User {i % SENDERS} <{sender_address(i)}>\r\n"
        f"To: {SUPPORT}\r\n"
        f"Subject: Export job {i} fails\r\n"
        f"Message-ID: <orig-{i}@customer.example>\r\n"
        "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Hello, the nightly export number {i} stopped with an error. How do I restart it?\r\n"
    ).encode()


def reply_mail(i: int) -> bytes:
    """The customer's follow-up to mail ``i``, threaded by In-Reply-To and References."""
    return (
        f"From: User {i % SENDERS} <{sender_address(i)}>\r\n"
        f"To: {SUPPORT}\r\n"
        f"Subject: Re: Export job {i} fails\r\n"
        f"Message-ID: <reply-{i}@customer.example>\r\n"
        f"In-Reply-To: <orig-{i}@customer.example>\r\n"
        f"References: <orig-{i}@customer.example>\r\n"
        "Date: Mon, 30 Nov 2026 10:30:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Some more detail on export {i}: it fails at 02:00 every night.\r\n"
    ).encode()


def commit_raw(sessions: sessionmaker[Session], mails: list[tuple[int, bytes]]) -> None:
    """Commit raw mails as the SMTP source would (envelope sender set)."""
    with sessions.begin() as s:
        for i, raw in mails:
            inbound.add_inbound(
                s, raw=raw, source="smtp", now=NOW, mail_from=sender_address(i), rcpt_to=[SUPPORT]
            )


def until_drained(run_once: Callable[[], int], is_drained: Callable[[], bool]) -> int:
    """Call ``run_once`` until ``is_drained``, bounded in passes and time; returns items done."""
    done = 0
    deadline = time.monotonic() + DEADLINE_SECONDS
    for _ in range(MAX_PASSES):
        done += run_once()
        if is_drained() or time.monotonic() > deadline:
            return done
    return done


def in_parallel(works: list[Callable[[], int]]) -> list[int]:
    """Run each work in its own thread, started together; their results in order."""
    barrier = threading.Barrier(len(works), timeout=DEADLINE_SECONDS)

    def started_together(work: Callable[[], int]) -> int:
        barrier.wait()
        return work()

    with ThreadPoolExecutor(len(works)) as pool:
        futures = [pool.submit(started_together, w) for w in works]
        return [f.result(timeout=DEADLINE_SECONDS * 2) for f in futures]


def process_all(sessions: sessionmaker[Session], procs: list[Processor]) -> list[int]:
    """Let every processor drain the inbound queue at once; how many each settled."""

    def is_drained() -> bool:
        with sessions() as s:
            return not inbound.pending_ids(s, 1)

    return in_parallel(
        [partial(until_drained, partial(p.run_once, NOW), is_drained) for p in procs]
    )


def test_three_processors_handle_each_message_once(
    sessions: sessionmaker[Session], record_property: Callable[[str, object], None]
) -> None:
    """Three processors draining one queue settle each message once, one case and one ack each."""
    config = config_from_mapping(CONFIG)
    settings = process_settings(config, team_calendar(config, NOW))
    processors = [Processor(sessions, settings) for _ in range(INSTANCES)]
    commit_raw(sessions, [(i, customer_mail(i)) for i in range(ORIGINALS)])
    began = time.monotonic()
    first = process_all(sessions, processors)
    record_property("originals_seconds", round(time.monotonic() - began, 2))
    replied = random.Random(7).sample(range(ORIGINALS), REPLIES)
    commit_raw(sessions, [(i, reply_mail(i)) for i in replied])
    began = time.monotonic()
    second = process_all(sessions, processors)
    record_property("replies_seconds", round(time.monotonic() - began, 2))
    record_property("per_instance", [first, second])
    assert (sum(first), sum(second)) == (ORIGINALS, REPLIES)
    with sessions() as s:
        assert_settled_once(s, ORIGINALS + REPLIES)
        assert_one_case_and_ack_per_original(s, settings.first_ref)
        assert_replies_threaded(s, replied)


def assert_settled_once(s: Session, total: int) -> None:
    """Every raw message processed, by exactly one attempt, into exactly one case message."""
    rows = s.execute(select(Inbound.status, Inbound.attempts)).all()
    assert Counter((status, attempts) for status, attempts in rows) == {("processed", 1): total}
    inbound_ids = s.scalars(select(Message.inbound_id).where(Message.direction == "in")).all()
    assert len(inbound_ids) == len(set(inbound_ids)) == total


def assert_one_case_and_ack_per_original(s: Session, first_ref: int) -> None:
    """One case per original mail, consecutive refs, one acknowledgement queued per case."""
    refs = sorted(s.scalars(select(Case.ref)).all())
    assert refs == list(range(first_ref, first_ref + ORIGINALS))
    acks = s.execute(
        select(Outbox.case_id, func.count()).where(Outbox.kind == "ack").group_by(Outbox.case_id)
    ).all()
    assert len(acks) == ORIGINALS
    assert {n for _, n in acks} == {1}
    plans = Counter(s.scalars(select(Case.plan)).all())
    assert plans == {"premier": ORIGINALS // 3, "standard": ORIGINALS - ORIGINALS // 3}


def assert_replies_threaded(s: Session, replied: list[int]) -> None:
    """Each reply joined the case its original opened."""
    by_message_id = dict(s.execute(select(Message.message_id, Message.case_id)).all())
    for i in replied:
        assert (
            by_message_id[f"<reply-{i}@customer.example>"]
            == by_message_id[f"<orig-{i}@customer.example>"]
        )


# --- senders -----------------------------------------------------------------------


def ack_context(ref: int) -> dict[str, Any]:
    """What the process stage puts in an acknowledgement's context."""
    return {
        "case_ref": ref,
        "ref_token": f"[#{ref}]",
        "subject": "Export job fails",
        "customer_name": "User",
        "customer_address": "user@acme.example",
        "plan": "premier",
        "priority": "medium",
        "priority_reason": "default",
        "first_response_words": "within 4 hours",
        "first_response_due": "2026-11-30T15:00:00+00:00",
        "first_response_due_local": "Mon 30 Nov 2026 15:00 UTC",
        "support_name": "Example Support",
        "support_address": SUPPORT,
    }


def queue_mails(sessions: sessionmaker[Session], count: int) -> None:
    """Queue ``count`` acknowledgement rows, all due now."""
    with sessions.begin() as s:
        for i in range(count):
            outbox.enqueue(
                s,
                kind="ack",
                case_id=None,
                to_addrs=[f"user{i % SENDERS}@acme.example"],
                subject=f"Re: [#{1000 + i}] Export job fails",
                template="ack",
                context=ack_context(1000 + i),
                message_id=f"<out-{i}@example.com>",
                in_reply_to=None,
                references=[],
                dedupe_key=f"ack:case:{1000 + i}",
                now=NOW - timedelta(seconds=count - i),
            )


def test_three_senders_deliver_each_row_once(
    sessions: sessionmaker[Session], record_property: Callable[[str, object], None]
) -> None:
    """Three senders draining one outbox deliver every row to the relay exactly once."""
    queue_mails(sessions, OUTBOX_ROWS)
    # The circuit breaker's limits are not what this test measures: lift them.
    unlimited = BreakerSettings(per_recipient=10**6, per_case=10**6)
    settings = SenderSettings(
        from_name="Support", from_addr=SUPPORT, loop_marker=SUPPORT, breaker=unlimited
    )
    log = structlog.get_logger("test.sender")

    def is_drained() -> bool:
        with sessions() as s:
            return outbox.counts(s)["queued"] == 0

    with SmtpSink() as sink:
        transport = SmtpTransport(sink.host, sink.port, starttls=False, timeout=10.0)
        senders = [
            Sender(sessions, transport, build_environment(), settings, log, rng=random.Random(i))
            for i in range(INSTANCES)
        ]
        began = time.monotonic()
        sent = in_parallel(
            [partial(until_drained, partial(x.run_once, NOW), is_drained) for x in senders]
        )
        record_property("send_seconds", round(time.monotonic() - began, 2))
        record_property("per_instance", sent)
        deliveries = sink.deliveries
    assert sum(sent) == OUTBOX_ROWS
    ids = Counter(d.message()["Message-ID"] for d in deliveries)
    assert len(ids) == OUTBOX_ROWS
    assert set(ids.values()) == {1}
    with sessions() as s:
        rows = s.execute(select(Outbox.status, Outbox.attempts)).all()
        assert Counter(map(tuple, rows)) == {("sent", 1): OUTBOX_ROWS}
