"""Delivery outside a transaction: the database stays writable, a lease keeps rows single."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email import message_from_bytes
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from structlog.testing import capture_logs

from notifications.errors import TemporaryTransportError
from notifications.render import build_environment
from notifications.sender import Sender
from notifications.transports import MaildirTransport
from storage.engine import make_engine, session_factory
from tests.integration.notifications.test_sender import NOW, SETTINGS, enqueue, only_row

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from email.message import EmailMessage
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

    from notifications.transports import Transport

LEASE = timedelta(minutes=2)
WAIT = 10.0  # seconds: every wait in these tests is bounded
WRITE_BOUND = 2.0  # an unrelated commit while a mail is in the transport (ms when unblocked)
MESSAGE_ID = "<ack-1042.abc@example.com>"


class Crash(BaseException):
    """The process dying: nothing in the sender may catch it."""


class HeldTransport:
    """Takes each mail, then holds ``send`` until released, as a slow relay would."""

    def __init__(self, *, held: bool = True, error: Exception | None = None) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        if not held:
            self.release.set()
        self.error = error
        self.delivered: list[EmailMessage] = []

    def send(self, msg: EmailMessage, *, from_addr: str, to_addrs: Sequence[str]) -> None:
        """Wait (bounded) for release; then accept ``msg`` or raise the configured error."""
        del from_addr, to_addrs
        self.entered.set()
        if not self.release.wait(WAIT):
            raise TemporaryTransportError("test transport never released")
        if self.error is not None:
            raise self.error
        self.delivered.append(msg)


class CrashAfterDelivery(MaildirTransport):
    """Delivers into the maildir, then the process dies before the outcome is recorded."""

    def send(self, msg: EmailMessage, *, from_addr: str, to_addrs: Sequence[str]) -> None:
        """Deliver durably, then die."""
        super().send(msg, from_addr=from_addr, to_addrs=to_addrs)
        raise Crash


def sender(sessions: sessionmaker[Session], transport: Transport) -> Sender:
    """A sender with an explicit lease and a seeded jitter."""
    log = structlog.get_logger("test.sender")
    env = build_environment()
    return Sender(sessions, transport, env, SETTINGS, log, rng=random.Random(1), lease=LEASE)


@pytest.fixture
def instances(database_url: str) -> Iterator[tuple[sessionmaker[Session], sessionmaker[Session]]]:
    """Two instances' sessions (an engine each) on one database, SQLite or PostgreSQL."""
    engines = [make_engine(database_url), make_engine(database_url)]
    yield session_factory(engines[0]), session_factory(engines[1])
    for engine in engines:
        engine.dispose()


def test_database_takes_writes_while_a_mail_is_in_the_transport(
    sessions: sessionmaker[Session],
) -> None:
    """On SQLite another thread commits while ``send`` runs: no write lock is held then."""
    enqueue(sessions)
    transport = HeldTransport()
    with ThreadPoolExecutor(2) as pool:
        passing = pool.submit(sender(sessions, transport).run_once, NOW)
        try:
            assert transport.entered.wait(WAIT)
            began = time.monotonic()
            writing = pool.submit(enqueue, sessions, "other", now=NOW + timedelta(hours=1))
            assert writing.result(timeout=WRITE_BOUND) is True
            assert time.monotonic() - began < WRITE_BOUND
        finally:
            transport.release.set()
        assert passing.result(timeout=WAIT) == 1
    assert [m["Message-ID"] for m in transport.delivered] == [MESSAGE_ID]


def test_row_in_flight_is_leased_then_taken_again(
    instances: tuple[sessionmaker[Session], sessionmaker[Session]],
) -> None:
    """Nobody takes a row being delivered until its lease ends; the late outcome then yields."""
    first_sessions, second_sessions = instances
    enqueue(first_sessions)
    slow, other = HeldTransport(), HeldTransport(held=False)
    first, second = sender(first_sessions, slow), sender(second_sessions, other)
    taken_at = NOW + LEASE + timedelta(seconds=1)
    with ThreadPoolExecutor(1) as pool, capture_logs() as logs:
        passing = pool.submit(first.run_once, NOW)
        try:
            assert slow.entered.wait(WAIT)
            assert first.run_once(NOW) == 0  # a second pass of the same instance
            assert second.run_once(NOW) == 0
            assert second.run_once(NOW + LEASE - timedelta(seconds=1)) == 0
            # The lease has run out (the first instance looks dead): the row goes again.
            assert second.run_once(taken_at) == 1
        finally:
            slow.release.set()
        # The first delivery did finish after all, but the row is already marked sent.
        assert passing.result(timeout=WAIT) == 0
    assert [m["Message-ID"] for m in [*other.delivered, *slow.delivered]] == [MESSAGE_ID] * 2
    row = only_row(first_sessions)
    assert (row.status, row.attempts, row.sent_at) == (
        "sent",
        1,
        NOW + LEASE + timedelta(seconds=1),
    )
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("outbox.sent", "info"),
        ("outbox.lease_lost", "warning"),
    ]
    assert (logs[1]["result"], logs[1]["status"]) == ("sent", "sent")


def test_late_failure_does_not_touch_a_row_another_sender_took(
    sessions: sessionmaker[Session],
) -> None:
    """A temporary failure reported after the lease ran out leaves the new holder's row alone."""
    enqueue(sessions)
    slow = HeldTransport(error=TemporaryTransportError("451 slow and then refused"))
    first, second = sender(sessions, slow), sender(sessions, HeldTransport(held=False))
    later = NOW + LEASE + timedelta(seconds=1)
    with ThreadPoolExecutor(1) as pool:
        passing = pool.submit(first.run_once, NOW)
        try:
            assert slow.entered.wait(WAIT)
            assert second.run_once(later) == 1
        finally:
            slow.release.set()
        assert passing.result(timeout=WAIT) == 0
    row = only_row(sessions)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)


def test_crash_after_delivery_resends_after_the_lease(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Dying between delivery and the outcome's commit sends again, only after the lease."""
    enqueue(sessions)
    maildir = tmp_path / "out"
    with pytest.raises(Crash):
        sender(sessions, CrashAfterDelivery(maildir)).run_once(NOW)
    row = only_row(sessions)
    assert (row.status, row.attempts) == ("queued", 0)
    restarted = sender(sessions, MaildirTransport(maildir))
    assert restarted.run_once(NOW + timedelta(minutes=1)) == 0  # still leased
    assert restarted.run_once(NOW + LEASE + timedelta(seconds=1)) == 1
    copies = [message_from_bytes(p.read_bytes()) for p in (maildir / "new").iterdir()]
    assert [m["Message-ID"] for m in copies] == [MESSAGE_ID] * 2
    row = only_row(sessions)
    assert (row.status, row.attempts) == ("sent", 1)


def test_rows_to_one_recipient_take_a_transaction_each(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N rows to one recipient cost N + 1 transactions: a batch holds one row per recipient.

    Rows to distinct recipients share batches (tests/integration/test_sender_batch.py).
    """
    for i in range(3):
        enqueue(sessions, key=f"k{i}", message_id=f"<k{i}@example.com>")
    transactions = 0
    real_begin = sessions.begin

    def counted_begin() -> Any:
        nonlocal transactions
        transactions += 1
        return real_begin()

    monkeypatch.setattr(sessions, "begin", counted_begin)
    assert sender(sessions, MaildirTransport(tmp_path / "out")).run_once(NOW) == 3
    assert transactions == 4
