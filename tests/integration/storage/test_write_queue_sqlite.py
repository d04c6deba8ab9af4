"""SQLite writers of one process wait in the write queue, not in SQLite's busy handler."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import text

from storage.engine import make_engine, session_factory
from storage.write_queue import checkpoint, urgent
from tests.support.services import REPO

HOLD = 0.3  # seconds the first writer keeps its transaction open
WAIT = 10.0
# The other process's hold: SQLite's busy handler, polling at 428 and 528 ms of waiting,
# would see this lock freed about 80 ms late (after a 300 ms hold, by luck only 30 ms).
OTHER_HOLD = 0.45


def _engine(tmp_path: Path, **kw: bool) -> object:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}", **kw)
    with session_factory(engine).begin() as s:
        s.execute(text("CREATE TABLE t (who TEXT, at REAL)"))
    return engine


def test_a_queued_writer_starts_as_soon_as_the_holder_commits(tmp_path: Path) -> None:
    """The next writer starts within 50 ms of the commit (SQLite polls in up to 100 ms steps)."""
    engine = _engine(tmp_path)
    sessions = session_factory(engine)  # type: ignore[arg-type]
    committed = threading.Event()
    started: list[float] = []

    def holder() -> None:
        with sessions.begin() as s:
            s.execute(text("INSERT INTO t VALUES ('holder', 0)"))
            time.sleep(HOLD)
        committed.set()

    def writer() -> None:
        with sessions.begin() as s:
            started.append(time.monotonic())
            s.execute(text("INSERT INTO t VALUES ('writer', 0)"))

    first = threading.Thread(target=holder)
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=writer)
    second.start()
    assert committed.wait(WAIT)
    freed = time.monotonic()
    first.join(WAIT)
    second.join(WAIT)
    # SQLite's busy handler would sleep in steps of up to 100 ms; the queue hands over.
    assert started, "the second writer never started"
    assert started[0] - freed < 0.05
    engine.dispose()  # type: ignore[attr-defined]


def test_an_urgent_commit_goes_before_a_stage_that_queued_first(tmp_path: Path) -> None:
    """An SMTP commit queued after a stage's transaction still goes first."""
    engine = _engine(tmp_path)
    sessions = session_factory(engine)  # type: ignore[arg-type]
    order: list[str] = []
    holding = threading.Event()

    def holder() -> None:
        with sessions.begin() as s:
            s.execute(text("INSERT INTO t VALUES ('holder', 0)"))
            holding.set()
            time.sleep(HOLD)

    def write(name: str, *, is_urgent: bool) -> None:
        if is_urgent:
            with urgent(), sessions.begin() as s:
                s.execute(text("INSERT INTO t VALUES (:w, 0)"), {"w": name})
                order.append(name)
        else:
            with sessions.begin() as s:
                s.execute(text("INSERT INTO t VALUES (:w, 0)"), {"w": name})
                order.append(name)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    assert holding.wait(WAIT)
    threads.append(threading.Thread(target=write, args=("stage",), kwargs={"is_urgent": False}))
    threads[-1].start()
    time.sleep(0.05)
    threads.append(threading.Thread(target=write, args=("smtp",), kwargs={"is_urgent": True}))
    threads[-1].start()
    for t in threads:
        t.join(WAIT)
    assert order == ["smtp", "stage"]
    engine.dispose()  # type: ignore[attr-defined]


# Another process: begins, says so, holds its transaction HOLD seconds, commits, says when.
_HOLDER = """
import sys, time
from sqlalchemy import text
from storage.engine import make_engine, session_factory
sessions = session_factory(make_engine(sys.argv[1]))
with sessions.begin() as s:
    s.execute(text("INSERT INTO t VALUES ('other', 0)"))
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
print(time.monotonic(), flush=True)
"""


def test_a_writer_starts_as_soon_as_another_process_commits(tmp_path: Path) -> None:
    """Across processes too, the next writer starts within 50 ms of the other's commit."""
    engine = _engine(tmp_path)
    sessions = session_factory(engine)  # type: ignore[arg-type]
    root = str(REPO)
    other = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, f"sqlite:///{tmp_path / 'q.db'}", str(OTHER_HOLD)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": root},
    )
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "holding"
        with sessions.begin() as s:
            s.execute(text("INSERT INTO t VALUES ('writer', 0)"))  # BEGIN runs here
            started = time.monotonic()
        out, _ = other.communicate(timeout=WAIT)
    finally:
        other.kill()
        other.wait(WAIT)
    assert other.returncode == 0
    freed = float(out.strip())
    # SQLite's busy handler would sleep in steps of up to 100 ms; the file lock is polled.
    assert started - freed < 0.05
    assert (tmp_path / "q.db-writer").stat().st_mode & 0o777 == 0o600
    engine.dispose()  # type: ignore[attr-defined]


def test_background_checkpoints_copy_the_wal_that_commits_leave(tmp_path: Path) -> None:
    """With background checkpoints no commit copies the WAL; ``checkpoint`` copies all of it."""
    engine = _engine(tmp_path, checkpoint_in_background=True)
    sessions = session_factory(engine)  # type: ignore[arg-type]
    with sessions.begin() as s:
        for n in range(200):
            s.execute(text("INSERT INTO t VALUES (:w, 0)"), {"w": "x" * 4000 + str(n)})
    database = tmp_path / "q.db"
    assert (tmp_path / "q.db-wal").stat().st_size > 4000 * 200
    assert database.stat().st_size < 4000 * 200  # no commit copied the WAL in
    assert checkpoint(engine) == 0  # type: ignore[arg-type]  # all of it copied
    assert database.stat().st_size > 4000 * 200
    engine.dispose()  # type: ignore[attr-defined]
