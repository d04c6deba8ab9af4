"""Reads that skip the autoflush still see every pending change they could read.

``storage.autoflush``: the clock read writes nothing first when only a case's own
columns changed, and writes first when a clock changed (an ended clock must not come
back as running) or an object is new.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event

from mail2case import app
from mail2case.config.settings import config_from_mapping
from storage import cases, inbound, sla_clocks
from storage.models import Case, Contact

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
MAIL = (
    b"From: Customer <c@client.example>\r\nTo: support@example.com\r\n"
    b"Subject: Export broken\r\nMessage-ID: <m1@client.example>\r\n"
    b"Date: Mon, 07 Dec 2026 09:00:00 +0000\r\n\r\nThe export fails.\r\n"
)


@pytest.fixture
def opened(database_url: str) -> Iterator[tuple[Engine, sessionmaker[Session], int, list[str]]]:
    """A database with one case and its running first-response clock; statements noted."""
    config = config_from_mapping(
        {"database": {"url": database_url}, "support": {"address": "support@example.com"}}
    )
    engine, sessions = app.open_database(config)
    with sessions.begin() as s:
        row_id = inbound.add_inbound(s, raw=MAIL, source="smtp", now=NOW, mail_from="c@x").id
    ((_, outcome),) = app.build_processor(config, sessions).handle_many([(row_id, NOW)])
    assert outcome is not None
    assert outcome.case_id is not None
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2].lstrip()))
    yield engine, sessions, outcome.case_id, statements
    engine.dispose()


def _writes(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.startswith(("INSERT", "UPDATE", "DELETE"))]


def test_a_changed_case_alone_is_not_written_before_the_clock_read(opened: Any) -> None:
    """The read cannot see ``updated_at``: it is written at the commit, not before."""
    _, sessions, case_id, statements = opened
    with sessions.begin() as s:
        case = s.get_one(Case, case_id)
        case.updated_at = NOW + timedelta(hours=1)
        statements.clear()
        assert [c.kind for c in cases.running_clocks(s, case_id)] == ["first"]
        assert _writes(statements) == []
    assert len(_writes(statements)) == 1  # the case's UPDATE, at the commit


def test_an_ended_clock_is_written_before_the_clock_read(opened: Any) -> None:
    """A clock ended in memory is not read back as running."""
    _, sessions, case_id, statements = opened
    with sessions.begin() as s:
        case = s.get_one(Case, case_id)
        running = cases.running_clocks(s, case_id)
        assert sla_clocks.end_clock(case, running, "first", at=NOW, state="met")
        statements.clear()
        assert cases.running_clocks(s, case_id) == []
        assert _writes(statements), statements


def test_a_new_object_is_written_before_the_clock_read(opened: Any) -> None:
    """Anything new may be joined to or cascade: the read flushes first."""
    _, sessions, case_id, statements = opened
    with sessions.begin() as s:
        s.add(Contact(address="new@client.example", created_at=NOW))
        statements.clear()
        cases.running_clocks(s, case_id)
        assert any(sql.startswith("INSERT INTO contacts") for sql in statements), statements
