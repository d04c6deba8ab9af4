"""How many SQL statements the case step costs on SQLite: a regression shows here first.

The bounds are the measured figures (issue 8): a new case is one statement per row it
writes, all its audit entries in one; a reply reads its case and running clocks once.
"""

from __future__ import annotations

import email.utils
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, func, select

from ingest.case_step import CaseStep, UnitOfWork
from mail2case import app
from mail2case.config.settings import config_from_mapping
from storage import inbound
from storage.models import Case, CaseEvent, Inbound, SlaClock
from tests.support.mail import plain_mail

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from ingest.outcome import Outcome
    from ingest.process import Processor

NOW = datetime(2026, 6, 1, 9, tzinfo=UTC)
SUPPORT = "support@example.com"

# The counter bump, the case (its deadline included), its clock, the contact, the
# message, the acknowledgement's outbox row and message, and the audit entries.
NEW_CASE = 8
# Plus the blob and the attachment rows.
NEW_CASE_WITH_ATTACHMENT = 10
# The case by Message-ID, the message, its audit entry, the running clocks, the case's
# updated_at.
REPLY = 5


def mail(sender: str, subject: str, *, attachment: bytes = b"", reply_to: str = "") -> bytes:
    """A customer message, optionally with an attachment or answering ``reply_to``."""
    replying = {"In_Reply_To": reply_to, "References": reply_to} if reply_to else {}
    msg = plain_mail(sender, subject, "The export has failed since this morning.", **replying)
    if attachment:
        msg.add_attachment(
            attachment, maintype="application", subtype="octet-stream", filename="a.log"
        )
    return msg.as_bytes()


@pytest.fixture
def site(tmp_path: Path) -> tuple[Engine, sessionmaker[Session], Processor]:
    """A migrated SQLite database and a processor on it, with one case open already.

    The first case creates the reference counter: that is paid once, not per case.
    """
    config = config_from_mapping(
        {"database": {"url": f"sqlite:///{tmp_path / 'c.db'}"}, "support": {"address": SUPPORT}}
    )
    engine, sessions = app.open_database(config)
    processor = app.build_processor(config, sessions)
    run_step(engine, sessions, processor, mail("first@customer.example", "Hello"), NOW)
    return engine, sessions, processor


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements executed on ``engine`` inside the block."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def run_step(
    engine: Engine,
    sessions: sessionmaker[Session],
    processor: Processor,
    raw: bytes,
    now: datetime,
) -> tuple[Outcome, list[str]]:
    """The case step alone on a stored message, flushed; its outcome and statements."""
    with sessions.begin() as s:
        row_id = inbound.add_inbound(s, raw=raw, source="smtp", now=now, mail_from="x@y").id
    analysis = processor.analyser.analyse(raw, null_sender=False)
    assert analysis.mail is not None
    assert analysis.verdict is not None
    with sessions.begin() as s:
        row = s.get_one(Inbound, row_id)
        with statements(engine) as seen:
            priority = processor.analyser.priority(analysis.mail)
            work = UnitOfWork(row, analysis.mail, analysis.verdict, now, lambda: priority)
            outcome = CaseStep(processor.settings, s, work).run()
            s.flush()
    return outcome, seen


def test_a_new_case_costs_one_statement_per_table_it_writes(
    site: tuple[Engine, sessionmaker[Session], Processor],
) -> None:
    """Eight statements, none of them a read; all four audit entries in one."""
    engine, sessions, processor = site
    raw = mail("ann@customer.example", "Export broken")
    outcome, seen = run_step(engine, sessions, processor, raw, NOW)
    assert outcome.opened
    assert len(seen) <= NEW_CASE, "\n".join(seen)
    with sessions() as s:
        # The metrics' (plan, priority) come with the outcome, not from another query.
        assert outcome.opened_as == tuple(
            s.execute(select(Case.plan, Case.priority).where(Case.id == outcome.case_id)).one()
        )
        kinds = s.scalars(
            select(CaseEvent.kind)
            .where(CaseEvent.case_id == outcome.case_id)
            .order_by(CaseEvent.id)
        ).all()
        clocks = s.scalar(select(func.count()).where(SlaClock.case_id == outcome.case_id))
    assert kinds == ["opened", "priority_set", "message_added", "ack_queued"]
    assert clocks == 1


def test_an_attachment_adds_its_blob_and_row(
    site: tuple[Engine, sessionmaker[Session], Processor],
) -> None:
    """The blob (its insert is its existence check) and the attachment rows, no more."""
    engine, sessions, processor = site
    raw = mail("bea@customer.example", "Log attached", attachment=b"trace\n" * 100)
    outcome, seen = run_step(engine, sessions, processor, raw, NOW)
    assert outcome.opened
    assert len(seen) <= NEW_CASE_WITH_ATTACHMENT, "\n".join(seen)


def test_a_reply_reads_its_case_and_clocks_once(
    site: tuple[Engine, sessionmaker[Session], Processor],
) -> None:
    """A customer's reply to an open case: the running clocks are read once, not twice."""
    engine, sessions, processor = site
    first = mail("cid@customer.example", "Export broken")
    opened, _ = run_step(engine, sessions, processor, first, NOW)
    message_id = email.message_from_bytes(first)["Message-ID"]
    reply = mail("cid@customer.example", "Re: Export broken", reply_to=message_id)
    later = NOW + timedelta(hours=1)
    outcome, seen = run_step(engine, sessions, processor, reply, later)
    assert outcome.case_id == opened.case_id
    assert not outcome.opened
    assert len(seen) <= REPLY, "\n".join(seen)
