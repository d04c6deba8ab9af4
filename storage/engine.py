"""Engine and session setup: SQLite pragmas for durability, PostgreSQL as is."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def is_sqlite(engine: Engine) -> bool:
    """Whether the engine talks to SQLite (single-instance, no SKIP LOCKED)."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, busy_timeout_ms: int = 5000) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and durable commits."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
        # First: "begin" listeners run in the order they were added, and the queue must
        # be passed before the pragmas' BEGIN IMMEDIATE waits in SQLite's busy handler.
        _install_write_queue(engine, _write_lock_for(engine), busy_timeout_ms / 1000)
        _install_sqlite_pragmas(engine, busy_timeout_ms)
        return engine
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        # SQLAlchemy's default PostgreSQL driver is psycopg2; the project ships psycopg 3.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True)


def _install_sqlite_pragmas(engine: Engine, busy_timeout_ms: int) -> None:
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
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        # instead of one failing with "database is locked" at its first write.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class FifoLock:
    """A lock granted in arrival order: a waiter is never overtaken by a later one.

    SQLite's own busy handler polls with sleeps of up to 100 ms, so a writer waiting
    for the database lock can sleep long after it was freed and be overtaken by the
    writer that held it (the process stage, in a loop). Queueing this process's
    writers here first hands the lock over as it is released: an SMTP commit waits
    for one processing transaction at most.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False
        self.owner: int | None = None  # the thread ident holding it

    def acquire(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the lock in turn; False if it did not come."""
        with self._mutex:
            if not self._held:
                self._held = True
                self.owner = threading.get_ident()
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        granted = waiter.acquire(timeout=timeout)
        with self._mutex:
            if not granted and waiter in self._waiters:
                self._waiters.remove(waiter)
                return False
            # Either woken, or handed the lock just as the wait timed out.
            self.owner = threading.get_ident()
            return True

    def release(self) -> None:
        """Hand the lock to the longest waiter, or free it."""
        with self._mutex:
            self.owner = None
            if self._waiters:
                self._waiters.popleft().release()  # ownership passes; _held stays True
            else:
                self._held = False


_write_locks: dict[str, FifoLock] = {}
_write_locks_guard = threading.Lock()
_HOLDS_LOCK = "mail2case_write_lock"


def _write_lock_for(engine: Engine) -> FifoLock:
    """One queue per database file in this process, shared by every engine on it."""
    key = engine.url.database or ""
    if key in {"", ":memory:"}:
        return FifoLock()  # a private database: nobody else to queue behind
    with _write_locks_guard:
        return _write_locks.setdefault(key, FifoLock())


def _install_write_queue(engine: Engine, lock: FifoLock, timeout: float) -> None:
    """Take ``lock`` before BEGIN IMMEDIATE; give it back once COMMIT or ROLLBACK is done.

    The dialect's commit and rollback are wrapped rather than hooked by events, because
    the ``commit`` event fires before the COMMIT (and its fsync) has run.
    """
    dialect = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def release(dbapi_conn: Any) -> None:
        try:
            info = dbapi_conn.info
        except (AttributeError, NotImplementedError):  # a bare connection, during connect
            return
        if info.pop(_HOLDS_LOCK, False):
            lock.release()

    def take(conn: Any) -> None:
        # A thread that holds the lock and opens a second transaction would wait for
        # itself: let it go on to SQLite's busy timeout and its error, as before.
        if lock.owner == threading.get_ident():
            return
        # A lock not granted in time (a long transaction) falls back to SQLite's wait.
        if lock.acquire(timeout):
            conn.connection.info[_HOLDS_LOCK] = True

    def commit(dbapi_conn: Any) -> None:
        try:
            do_commit(dbapi_conn)
        finally:
            release(dbapi_conn)

    def rollback(dbapi_conn: Any) -> None:
        try:
            do_rollback(dbapi_conn)
        finally:
            release(dbapi_conn)

    dialect.do_commit = commit  # type: ignore[method-assign,assignment]
    dialect.do_rollback = rollback  # type: ignore[method-assign,assignment]
    event.listen(engine, "begin", take)
    # A connection closed or invalidated mid-transaction gives its turn back too.
    event.listen(engine, "checkin", lambda _conn, record: _release_record(record, lock))
    event.listen(engine, "invalidate", lambda _conn, record, _exc: _release_record(record, lock))


def _release_record(record: Any, lock: FifoLock) -> None:
    if record is not None and record.info.pop(_HOLDS_LOCK, False):
        lock.release()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
