"""SQLite files: private whatever the umask; a WAL that never stays large; no SQL logged."""

from __future__ import annotations

import logging
import os
import stat
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from mail2case.service.build import _Checkpoints
from storage.engine import make_engine
from storage.write_queue import wal_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the test process's umask after a test that sets its own."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o002, 0o022, 0o077])
def test_database_and_wal_are_not_readable_by_others(
    tmp_path: Path, umask: None, mask: int
) -> None:
    """The database, its WAL and shared-memory files carry no permission for others."""
    os.umask(mask)
    db = tmp_path / "m.db"
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x TEXT)"))
        conn.execute(text("INSERT INTO t VALUES ('customer mail')"))
    files = [db, tmp_path / "m.db-wal", tmp_path / "m.db-shm"]
    assert all(f.exists() for f in files)
    for f in files:
        mode = stat.S_IMODE(f.stat().st_mode)
        assert mode & 0o007 == 0, f"{f.name} is {oct(mode)}"
        assert mode & 0o600 == 0o600
        assert mode & 0o070 == 0o060 & ~mask & 0o070
    engine.dispose()


def test_an_existing_database_keeps_the_mode_its_operator_gave_it(
    tmp_path: Path, umask: None
) -> None:
    """Only a new file is created private: an operator's chmod is not undone."""
    db = tmp_path / "m.db"
    db.touch()
    db.chmod(0o644)
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
    assert stat.S_IMODE(db.stat().st_mode) == 0o644
    engine.dispose()


def test_sql_parameters_are_not_logged_even_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A message body or a signed reply address bound to a statement stays out of the log."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    secret = "support+1042-k3j9c2xq@example.com please restore my data"
    with caplog.at_level(logging.DEBUG, logger="sqlalchemy.engine"):
        engine.echo = True
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x TEXT)"))
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": secret})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "INSERT INTO t" in logged  # the statement is logged: the check below can fail
    assert secret not in logged
    engine.dispose()


def test_an_idle_checkpoint_cuts_the_wal_back_to_nothing(tmp_path: Path) -> None:
    """After a burst, the WAL is copied and, once idle, truncated: it never stays large."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}", checkpoint_in_background=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x BLOB)"))
        for _ in range(20):
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": b"\0" * 200_000})
    grown = wal_bytes(engine)
    assert grown is not None
    assert grown > 3_000_000
    stage = _Checkpoints(engine)
    stage(NOW)  # copies; the WAL keeps its size
    assert wal_bytes(engine) == grown
    stage(NOW)  # nothing written since: idle, so truncated
    assert wal_bytes(engine) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 20
    engine.dispose()


def test_a_busy_database_is_not_truncated(tmp_path: Path) -> None:
    """A write between passes means not idle: the WAL is only copied (writers never wait)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}", checkpoint_in_background=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x BLOB)"))
    stage = _Checkpoints(engine)
    for n in range(3):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": bytes([n]) * 100_000})
        stage(NOW)
        assert (wal_bytes(engine) or 0) > 0
    engine.dispose()
