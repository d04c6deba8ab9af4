"""Migration 0005 moves the raw mail out of ``inbound`` and back, byte for byte."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from alembic import command
from sqlalchemy import inspect, text

from storage import schema
from storage.engine import make_engine

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine

# Every byte value, a CRLF mail and an empty one: the copy must not touch a byte.
RAWS = (bytes(range(256)) * 40, b"From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n", b"")
INSERT_AT_0004 = (
    "INSERT INTO inbound (id, received_at, source, mail_from, rcpt_to, raw, size, status,"
    " attempts) VALUES (:id, '2026-12-01 10:00:00+00:00', 'smtp', 'a@b.example', '[]', :raw,"
    " :size, 'received', 0)"
)


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    """An engine on an empty database of each backend, its mail stored at revision 0004."""
    created = make_engine(empty_database_url)
    schema.upgrade(created, "0004")
    with created.begin() as conn:
        for number, raw in enumerate(RAWS, start=1):
            conn.execute(text(INSERT_AT_0004), {"id": number, "raw": raw, "size": len(raw)})
    yield created
    created.dispose()


def _downgrade(engine: Engine, revision: str) -> None:
    """Alembic's downgrade on this engine (the daemon never downgrades; an operator may)."""
    cfg = schema.alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def test_upgrade_moves_each_message_to_inbound_raw(engine: Engine) -> None:
    """Rows written at 0004 keep their bytes in inbound_raw at 0005; inbound loses the column."""
    schema.upgrade(engine)
    assert "raw" not in _columns(engine, "inbound")
    with engine.connect() as conn:
        moved = conn.execute(text("SELECT inbound_id, raw FROM inbound_raw ORDER BY inbound_id"))
        assert [(row[0], bytes(row[1])) for row in moved] == list(enumerate(RAWS, start=1))


def test_downgrade_puts_the_bytes_back(engine: Engine) -> None:
    """Down to 0004 the raw column is back with every message's bytes; inbound_raw is gone."""
    schema.upgrade(engine)
    _downgrade(engine, "0004")
    assert "inbound_raw" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        back = conn.execute(text("SELECT id, raw FROM inbound ORDER BY id"))
        assert [(row[0], bytes(row[1])) for row in back] == list(enumerate(RAWS, start=1))
