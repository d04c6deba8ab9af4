"""Storage on SQLite and on a real PostgreSQL: schema, types, and claims under concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import StatementError

from storage import cases, inbound, outbox
from storage.engine import make_engine, session_factory
from storage.models import Base, Contact, Customer, Inbound, Outbox
from storage.schema import HEAD, alembic_config, current_revision, head_revision, upgrade
from storage.statuses import InboundStatus
from tests.support.services import REPO

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from tests.support.postgres import PostgresServer

T = TypeVar("T")

NOW = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
THREADS = 8
# How long a blocked session is given to prove it waits (SQLite) or skips (PostgreSQL).
HOLD_SECONDS = 1.0
JOIN_SECONDS = 30.0
UPGRADE_SCRIPT = (
    "import sys; from storage import engine, schema; "
    "schema.upgrade(engine.make_engine(sys.argv[1]))"
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the fresh, migrated database of this test's backend."""
    created = make_engine(database_url)
    yield created
    created.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions on that engine."""
    return session_factory(engine)


def is_postgres(sessions: sessionmaker[Session]) -> bool:
    """Whether these sessions talk to PostgreSQL."""
    bind = sessions.kw["bind"]
    return bool(bind.dialect.name == "postgresql")


def add_raw(sessions: sessionmaker[Session], count: int) -> list[int]:
    """Commit ``count`` pending raw messages; returns their ids."""
    with sessions.begin() as s:
        rows = [
            inbound.add_inbound(
                s, raw=f"Subject: {i}\r\n\r\nhi\r\n".encode(), source="smtp", now=NOW
            )
            for i in range(count)
        ]
        return [r.id for r in rows]


def enqueue(s: Session, key: str, now: datetime = NOW, **kw: Any) -> bool:
    """Queue one acknowledgement-like row under ``key``."""
    values: dict[str, Any] = {
        "kind": "ack",
        "case_id": None,
        "to_addrs": ["ann@customer.example"],
        "subject": f"Re: {key}",
        "template": "ack",
        "context": {"case_ref": 1},
        "message_id": f"<{key}@example.com>",
        "in_reply_to": None,
        "references": [],
        "dedupe_key": key,
        "now": now,
    } | kw
    return outbox.enqueue(s, **values)


def while_held(work: Callable[[], T], release: Callable[[], None]) -> tuple[bool, T]:
    """Run ``work`` in a thread while this one holds a transaction, then ``release`` it.

    Returns whether ``work`` finished before the release (PostgreSQL skips locked rows;
    SQLite's single writer waits), and its result.
    """
    with ThreadPoolExecutor(1) as pool:
        future: Future[T] = pool.submit(work)
        wait([future], timeout=HOLD_SECONDS)
        finished_first = future.done()
        release()
        return finished_first, future.result(timeout=JOIN_SECONDS)


def in_threads(work: Callable[[int], T], count: int = THREADS) -> list[T]:
    """Run ``work(i)`` in ``count`` threads started together; results in thread order."""
    barrier = threading.Barrier(count, timeout=JOIN_SECONDS)

    def started_together(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(started_together, i) for i in range(count)]
        return [f.result(timeout=JOIN_SECONDS) for f in futures]


# --- schema ------------------------------------------------------------------------


def test_migrations_reach_head(engine: Engine) -> None:
    """The fixture's upgrade leaves the database at the newest revision."""
    assert current_revision(engine) == head_revision(engine)


def test_head_is_the_newest_migration(engine: Engine) -> None:
    """``HEAD``, which spares a database at head the Alembic import, is Alembic's head."""
    assert head_revision(engine) == HEAD


def test_a_database_at_head_is_opened_without_alembic(database_url: str) -> None:
    """Nothing to migrate: one query, and no Alembic import (a tenth of a second a process)."""
    script = f"{UPGRADE_SCRIPT}; print(sorted(m for m in sys.modules if m.startswith('alembic')))"
    done = subprocess.run(
        [sys.executable, "-c", script, database_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=JOIN_SECONDS,
    )
    assert done.stdout.strip() == "[]"


def test_a_database_behind_head_is_brought_to_head(empty_database_url: str) -> None:
    """The quick check does not stop an upgrade: a database one migration behind gets it."""
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, "0004")
        assert current_revision(engine) == "0004"
        upgrade(engine)
        assert current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_models_and_migrations_agree(engine: Engine) -> None:
    """Autogenerate finds nothing to change between the migrated schema and the models."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


# --- types -------------------------------------------------------------------------


def test_aware_datetimes_round_trip_as_utc(sessions: sessionmaker[Session]) -> None:
    """A datetime in any zone comes back as the same instant in UTC, microseconds kept."""
    ist = timezone(timedelta(hours=5, minutes=30))
    at = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=ist)
    with sessions.begin() as s:
        row_id = inbound.add_inbound(s, raw=b"x", source="smtp", now=at).id
    with sessions() as s:
        row = s.get_one(Inbound, row_id)
        assert row.received_at == at
        assert row.received_at.tzinfo is UTC
        assert row.received_at.isoformat() == "2026-03-28T20:00:15.123456+00:00"


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    """Storing a naive datetime fails instead of guessing its zone (invariant 6)."""
    with pytest.raises(StatementError, match="naive datetime"), sessions.begin() as s:
        inbound.add_inbound(s, raw=b"x", source="smtp", now=datetime(2026, 1, 1))  # noqa: DTZ001


def test_json_columns_round_trip(sessions: sessionmaker[Session]) -> None:
    """Nested JSON context and address lists come back equal, non-ASCII included."""
    context = {"name": "Zoë Ünïcode ✓", "n": 42, "ok": True, "none": None, "nested": {"l": [1, 2]}}
    with sessions.begin() as s:
        enqueue(s, "k", context=context, to_addrs=["a@x.example", "b@y.example"])
    with sessions() as s:
        row = s.scalars(select(Outbox)).one()
        assert row.context == context
        assert row.to_addrs == ["a@x.example", "b@y.example"]


def test_large_raw_mail_round_trips_byte_for_byte(sessions: sessionmaker[Session]) -> None:
    """A 5 MB raw message with every byte value is stored and read back unchanged."""
    raw = bytes(range(256)) * 4096 * 5 + os.urandom(1000)
    with sessions.begin() as s:
        row_id = inbound.add_inbound(s, raw=raw, source="smtp", now=NOW).id
    with sessions() as s:
        row = s.get_one(Inbound, row_id)
        assert (row.size, row.raw) == (len(raw), raw)


# --- concurrency -------------------------------------------------------------------


def test_case_refs_are_unique_under_concurrency(sessions: sessionmaker[Session]) -> None:
    """Threads allocating refs at once, the very first included, get distinct consecutive refs."""
    per_thread = 25

    def allocate(_: int) -> list[int]:
        refs = []
        for _ in range(per_thread):
            with sessions.begin() as s:
                refs.append(cases.next_ref(s, 1000))
        return refs

    refs = [ref for batch in in_threads(allocate) for ref in batch]
    assert sorted(refs) == list(range(1000, 1000 + THREADS * per_thread))


def test_customer_created_once_when_two_sessions_race(sessions: sessionmaker[Session]) -> None:
    """Sessions naming a new customer at once all get the same id, and one row exists."""

    def resolve(_: int) -> int | None:
        with sessions.begin() as s:
            return cases.customer_id(s, "Acme", NOW)

    ids = in_threads(resolve)
    assert len(set(ids)) == 1
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 1


def test_contact_recorded_once_when_two_sessions_race(sessions: sessionmaker[Session]) -> None:
    """Sessions touching a new address at once leave one contact, first sight's name kept."""

    def touch(i: int) -> None:
        with sessions.begin() as s:
            cases.touch_contact(s, "Ann@Customer.example", f"Ann {i}", None, NOW)

    in_threads(touch)
    with sessions() as s:
        (contact,) = s.scalars(select(Contact)).all()
        assert contact.address == "ann@customer.example"
        assert contact.display_name.startswith("Ann ")


def test_lock_pending_gives_a_row_to_one_session_only(sessions: sessionmaker[Session]) -> None:
    """While one session holds a pending row, another gets None for it and the next row instead."""
    first, second = add_raw(sessions, 2)
    holder = sessions()
    holder.begin()
    held = inbound.lock_pending(holder, first)
    assert held is not None

    def other() -> tuple[inbound.Pending | None, int | None]:
        with sessions.begin() as s:
            taken = inbound.lock_pending(s, first)
            nxt = inbound.lock_pending(s, second)
            return taken, nxt.id if nxt else None

    def settle_and_commit() -> None:
        inbound.settle(holder, held.id, status=InboundStatus.PROCESSED, now=NOW)
        holder.commit()
        holder.close()

    skipped, (taken, nxt) = while_held(other, settle_and_commit)
    assert (taken, nxt) == (None, second)
    assert skipped is is_postgres(sessions)  # SKIP LOCKED does not wait; SQLite's writer does


def test_outbox_enqueue_race_leaves_one_row(sessions: sessionmaker[Session]) -> None:
    """A second session enqueuing a key the first has not committed yet adds nothing, no error."""
    holder = sessions()
    holder.begin()
    assert enqueue(holder, "ack:case:1") is True

    def other() -> bool:
        with sessions.begin() as s:
            return enqueue(s, "ack:case:1", subject="second")

    waited, added = while_held(other, holder.commit)
    holder.close()
    assert (waited, added) == (False, False)  # it waits for the first to decide
    with sessions() as s:
        assert s.scalars(select(Outbox.subject)).all() == ["Re: ack:case:1"]


def test_outbox_enqueue_many_racers_one_row_per_key(sessions: sessionmaker[Session]) -> None:
    """Threads enqueuing the same keys at once add each key exactly once between them."""
    keys = [f"reminder:clock:{i}" for i in range(20)]

    def add_all(_: int) -> list[bool]:
        added = []
        for key in keys:
            with sessions.begin() as s:
                added.append(enqueue(s, key))
        return added

    results = in_threads(add_all)
    assert [sum(column) for column in zip(*results, strict=True)] == [1] * len(keys)
    with sessions() as s:
        assert outbox.counts(s)["queued"] == len(keys)


def test_claim_due_skips_rows_another_transaction_holds(sessions: sessionmaker[Session]) -> None:
    """Rows claimed by one sender are not handed to another; the others are."""
    with sessions.begin() as s:
        for i in range(4):
            enqueue(s, f"k{i}", now=NOW + timedelta(seconds=i))
    holder = sessions()
    holder.begin()
    (held,) = outbox.claim_due(holder, NOW + timedelta(minutes=1), 1)
    assert held.dedupe_key == "k0"

    def other() -> list[str]:
        with sessions.begin() as s:
            return [r.dedupe_key for r in outbox.claim_due(s, NOW + timedelta(minutes=1), 10)]

    def send_and_commit() -> None:
        outbox.mark_sent(holder, held, NOW)
        holder.commit()
        holder.close()

    skipped, claimed = while_held(other, send_and_commit)
    assert claimed == ["k1", "k2", "k3"]
    assert skipped is is_postgres(sessions)


def test_requeue_puts_a_quarantined_message_back_once(sessions: sessionmaker[Session]) -> None:
    """A quarantined message can be requeued, and requeuing it again reports nothing done."""
    (row_id,) = add_raw(sessions, 1)
    with sessions.begin() as s:
        inbound.settle(s, row_id, status=InboundStatus.QUARANTINED, now=NOW, reason="bad")
    with sessions.begin() as s:
        assert inbound.requeue(s, row_id) is True
        assert inbound.requeue(s, row_id) is False
    with sessions() as s:
        assert inbound.pending_ids(s, 10) == [row_id]


def test_instances_starting_together_migrate_once(empty_database_url: str) -> None:
    """Instances (processes) upgrading one empty database at the same moment all succeed."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE_SCRIPT, empty_database_url],
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=JOIN_SECONDS)[1].decode() for p in procs]
    # The whole of each traceback: a list in the message is cut short in pytest's report.
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)
    engine = make_engine(empty_database_url)
    assert current_revision(engine) == head_revision(engine)
    engine.dispose()


def test_alembic_config_keeps_a_percent_encoded_password() -> None:
    """A password with URL escapes reaches Alembic intact (no ConfigParser interpolation)."""
    url = "postgresql+psycopg://app:p%40ss%25w@127.0.0.1:5999/cases"
    engine = make_engine(url)
    assert alembic_config(engine).get_main_option("sqlalchemy.url") == url
    engine.dispose()


def test_plain_postgresql_url_uses_psycopg_3(postgres: PostgresServer) -> None:
    """A driverless postgresql:// URL connects through psycopg 3 (psycopg2 is not shipped)."""
    engine = make_engine(postgres.url("postgres").replace("postgresql+psycopg://", "postgresql://"))
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT 1")) == 1
    assert engine.dialect.driver == "psycopg"
    engine.dispose()
