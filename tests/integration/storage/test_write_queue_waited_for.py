"""A transaction can ask whether a writer waits for its lock: of its process, or SMTP."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.engine import make_engine, session_factory
from storage.write_queue import is_waited_for
from tests.support.services import REPO

WAIT = 10.0
POLLS = 500  # of 10 ms: a bounded wait for the other writer to queue


def _engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with session_factory(engine).begin() as s:
        s.execute(text("CREATE TABLE t (who TEXT)"))
    return engine


def _seen_within(engine: Engine) -> bool:
    for _ in range(POLLS):
        if is_waited_for(engine):
            return True
        time.sleep(0.01)
    return False


def test_a_writer_of_this_process_queued_behind_the_transaction_is_seen(tmp_path: Path) -> None:
    """Nobody waits, then a second writer queues: the transaction sees it."""
    engine = _engine(tmp_path)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        s.execute(text("INSERT INTO t VALUES ('holder')"))
        assert not is_waited_for(engine)
        second = threading.Thread(target=_write, args=(sessions, "second"))
        second.start()
        assert _seen_within(engine)
    second.join(WAIT)
    assert not is_waited_for(engine)
    with sessions() as s:
        assert s.execute(text("SELECT who FROM t ORDER BY rowid")).scalars().all() == [
            "holder",
            "second",
        ]
    engine.dispose()


def _write(sessions: sessionmaker[Session], who: str) -> None:
    with sessions.begin() as s:
        s.execute(text("INSERT INTO t VALUES (:w)"), {"w": who})


# Another process's SMTP commit: an urgent writer, waiting for the lock.
_SMTP_COMMIT = """
import sys
from sqlalchemy import text
from storage.engine import make_engine, session_factory
from storage.write_queue import urgent
sessions = session_factory(make_engine(sys.argv[1]))
with urgent(), sessions.begin() as s:
    s.execute(text("INSERT INTO t VALUES ('smtp')"))
"""


def test_another_process_s_smtp_commit_is_seen(tmp_path: Path) -> None:
    """The process stage runs in a child of its own: the daemon's SMTP commits are seen too."""
    engine = _engine(tmp_path)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        s.execute(text("INSERT INTO t VALUES ('stage')"))
        smtp = subprocess.Popen(
            [sys.executable, "-c", _SMTP_COMMIT, f"sqlite:///{tmp_path / 'w.db'}"],
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert _seen_within(engine)
    assert smtp.wait(WAIT) == 0
    assert not is_waited_for(engine)
    engine.dispose()


def test_postgresql_has_no_write_lock_to_wait_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are locked there, not the database: a SQLite file of the same name is not it."""
    monkeypatch.chdir(tmp_path)
    sqlite = make_engine("sqlite:///none")  # its write queue is known by the name "none"
    postgres = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")  # never connects
    sessions = session_factory(sqlite)
    with sessions.begin() as s:
        s.execute(text("CREATE TABLE t (who TEXT)"))
    with sessions.begin() as s:
        s.execute(text("INSERT INTO t VALUES ('holder')"))
        second = threading.Thread(target=_write, args=(sessions, "second"))
        second.start()
        assert _seen_within(sqlite)
        assert not is_waited_for(postgres)
    second.join(WAIT)
    sqlite.dispose()
