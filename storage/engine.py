"""Engine and session setup: SQLite pragmas for durability, PostgreSQL as is."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.write_queue import install_write_queue, write_queue_for

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def is_sqlite(engine: Engine) -> bool:
    """Whether the engine talks to SQLite (single-instance, no SKIP LOCKED)."""
    return engine.dialect.name == "sqlite"


def make_engine(
    url: str, *, busy_timeout_ms: int = 5000, checkpoint_in_background: bool = False
) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and durable commits.

    ``checkpoint_in_background``: commits never copy the WAL into the database file
    themselves; the caller runs ``storage.write_queue.checkpoint`` from a thread of its
    own (the daemon, so that no SMTP commit pays for a checkpoint's writes and fsync).
    """
    if url.startswith("sqlite"):
        create_private_file(make_url(url).database)
        engine = create_engine(
            url, connect_args={"timeout": busy_timeout_ms / 1000}, hide_parameters=True
        )
        # First: "begin" listeners run in the order they were added, and the queue must
        # be passed before the pragmas' BEGIN IMMEDIATE waits in SQLite's busy handler.
        install_write_queue(engine, write_queue_for(engine), busy_timeout_ms / 1000)
        _install_sqlite_pragmas(
            engine, busy_timeout_ms, autocheckpoint=0 if checkpoint_in_background else 1000
        )
        return engine
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        # SQLAlchemy's default PostgreSQL driver is psycopg2; the project ships psycopg 3.
        parsed = parsed.set(drivername="postgresql+psycopg")
    # Parameters are message bodies and signed reply addresses: never in a log line.
    return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)


def create_private_file(database: str | None) -> None:
    """Create a SQLite database file readable by no one but its owner and group.

    SQLite creates the file with the process's umask (0644 under the usual 022), and
    its -wal and -shm files take the database file's mode. So the file is made here
    first, with no permission for others whatever the umask. An existing file is left
    as the operator set it.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    mode = 0o660 & ~_umask() & ~0o007
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))


def _install_sqlite_pragmas(engine: Engine, busy_timeout_ms: int, *, autocheckpoint: int) -> None:
    """Set the pragmas on every new connection (they are per connection in SQLite)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The stdlib driver opens transactions lazily and never for SELECT; we want
        # BEGIN IMMEDIATE semantics under our control, so take over transaction handling.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # FULL: a commit survives power loss in WAL mode too; every 250 follows one.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        # instead of one failing with "database is locked" at its first write.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def _umask() -> int:
    """The process's umask, read without setting it (os.umask would race other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o077  # unknown: the strictest
