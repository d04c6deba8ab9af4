"""The import's queries on a real SQLite file: staged refs, held order, threads awaiting us."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from storage import history
from storage.inbound import add_inbound
from storage.models import Case, Inbound, Message
from storage.statuses import InboundStatus

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SOURCE = "import"


def stage(s: Session, ref: str, *, source: str = SOURCE, written: datetime | None = None) -> int:
    """A held row from ``source``; its id."""
    row = add_inbound(s, raw=b"x", source=source, now=NOW, source_ref=ref)
    row.status = InboundStatus.HELD
    row.written_at = written
    return row.id


def new_case(s: Session, ref: int) -> Case:
    """A closed case."""
    case = Case(
        ref=ref,
        status="closed",
        priority="low",
        plan="standard",
        customer_address="ann@customer.example",
        opened_at=NOW - timedelta(days=30),
        updated_at=NOW,
    )
    s.add(case)
    s.flush()
    return case


def add_message(
    s: Session, case: Case, at: datetime, *, kind: str = "customer", source: str = SOURCE
) -> None:
    """A message on ``case`` from a row of ``source``; agents' messages go out."""
    row = add_inbound(s, raw=b"x", source=source, now=NOW)
    direction = "in" if kind == "customer" else "out"
    s.add(Message(case_id=case.id, inbound_id=row.id, direction=direction, kind=kind, at=at))
    s.flush()


def test_staged_refs_are_those_of_the_source(sessions: sessionmaker[Session]) -> None:
    """Only refs already stored from that source count as staged."""
    with sessions.begin() as s:
        stage(s, "a")
        stage(s, "b", source="imap")
    with sessions() as s:
        assert history.staged_refs(s, SOURCE, ["a", "b", "c"]) == {"a"}
        assert history.staged_refs(s, SOURCE, []) == set()


def test_held_rows_come_in_written_order(sessions: sessionmaker[Session]) -> None:
    """Held rows are listed oldest written first, ties by id; other statuses are left out."""
    with sessions.begin() as s:
        late = stage(s, "late", written=NOW)
        early = stage(s, "early", written=NOW - timedelta(days=3))
        tie = stage(s, "tie", written=NOW)
        done = stage(s, "done", written=NOW - timedelta(days=9))
        s.get_one(Inbound, done).status = "processed"
    with sessions() as s:
        assert history.held_ids(s, InboundStatus.HELD) == [early, late, tie]
        assert history.written_times(s, [early, late]) == {
            early: NOW - timedelta(days=3),
            late: NOW,
        }
        assert history.written_times(s, []) == {}


def test_threads_awaiting_reply_end_with_a_recent_imported_customer_message(
    sessions: sessionmaker[Session],
) -> None:
    """Only cases whose last message is an imported customer's, on or after the date, are listed."""
    since = NOW - timedelta(days=7)
    with sessions.begin() as s:
        waiting = new_case(s, 1)
        add_message(s, waiting, since - timedelta(days=1), kind="agent")
        add_message(s, waiting, since)
        answered = new_case(s, 2)
        add_message(s, answered, since + timedelta(days=1))
        add_message(s, answered, since + timedelta(days=2), kind="agent")
        old = new_case(s, 3)
        add_message(s, old, since - timedelta(seconds=1))
        live = new_case(s, 4)
        add_message(s, live, since + timedelta(days=1), source="smtp")
        waiting_id = waiting.id
    with sessions() as s:
        assert history.threads_awaiting_reply(s, SOURCE, since) == [(waiting_id, since)]
