"""This process's SQLite writers queue here, in order, before SQLite's own lock.

Every SQLite transaction takes the database's single write lock (BEGIN IMMEDIATE,
``storage.engine``). SQLite's busy handler polls for it with sleeps of up to 100 ms,
so a writer can sleep long after the lock was freed and be overtaken by the writer
that held it (the process stage, in a loop): measured under a 16-connection SMTP
burst, SMTP commits spent seconds in BEGIN. Queueing the writers of this process
here first hands the lock over the moment it is released; SMTP commits (``urgent``)
go ahead of the stages' transactions, so a 250 waits for one transaction at most.

Other processes on the same file (the process stage's child, the CLI) would meet this
one in SQLite's busy handler again. So a writer that has passed the queue then takes
an exclusive ``flock`` on ``<database>-writer`` (polled every millisecond: flock has no
timeout) and holds it until its COMMIT or ROLLBACK is done; the lock is handed over
within about a millisecond, not SQLite's 100 ms steps. Either wait that runs out
falls back to SQLite's own busy wait, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine

_HOLDS_LOCK = "mail2case_write_lock"
_HOLDS_FILE_LOCK = "mail2case_file_lock"
_POLL_SECONDS = 0.001
_local = threading.local()


class WriteQueue:
    """A lock granted in arrival order, urgent waiters first; never overtaken by a later one."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._urgent: deque[threading.Lock] = deque()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False
        self.owner: int | None = None  # the thread ident holding it
        # Taken after the queue, for writers in other processes; None: a private database.
        self.file_lock: FileLock | None = None

    def acquire(self, timeout: float, *, urgent: bool = False) -> bool:
        """Wait up to ``timeout`` seconds for the lock in turn; False if it did not come."""
        with self._mutex:
            if not self._held:
                self._held = True
                self.owner = threading.get_ident()
                return True
            waiter = threading.Lock()
            waiter.acquire()
            line = self._urgent if urgent else self._waiters
            line.append(waiter)
        granted = waiter.acquire(timeout=timeout)
        with self._mutex:
            if not granted and waiter in line:
                line.remove(waiter)
                return False
            # Either woken, or handed the lock just as the wait timed out.
            self.owner = threading.get_ident()
            return True

    def is_waited_for(self) -> bool:
        """Whether a writer of this process waits in the queue."""
        with self._mutex:
            return bool(self._urgent or self._waiters)

    def release(self) -> None:
        """Hand the lock to the first urgent waiter, else the longest waiter, or free it."""
        with self._mutex:
            self.owner = None
            line = self._urgent or self._waiters
            if line:
                line.popleft().release()  # ownership passes; _held stays True
            else:
                self._held = False


class FileLock:
    """An exclusive ``flock`` on one file, taken by polling; one open file per process.

    flock locks belong to the open file description, not to a thread: every thread of
    this process would pass a lock another thread holds on the same descriptor. That is
    sound here only because the write queue lets one thread at a time take this lock.
    The files are opened close-on-exec, and reopened in a forked child, so that no
    other process shares a description (and with it a lock).

    Urgent writers (SMTP commits) go first across processes too: while one waits, from
    before it queues in its own process, it holds a shared lock on ``<path>-urgent``;
    a writer that is not urgent leaves the lock alone while another process's urgent
    writer waits (the in-process hand-over to an urgent writer takes a GIL switch, in
    which the other process, polling, would otherwise take the lock).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fds: tuple[int, int, int] | None = None  # the lock, our mark, the probe
        self._pid = 0
        self._guard = threading.Lock()
        self._urgent_waiting = 0  # this process's urgent writers marked as waiting

    def _files(self) -> tuple[int, int, int]:
        with self._guard:
            if self._fds is None or self._pid != os.getpid():
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                urgent = f"{self.path}-urgent"
                self._fds = (
                    os.open(self.path, flags, 0o600),
                    os.open(urgent, flags, 0o600),
                    os.open(urgent, flags, 0o600),
                )
                self._pid, self._urgent_waiting = os.getpid(), 0
            return self._fds

    @contextlib.contextmanager
    def urgent_waiting(self) -> Iterator[None]:
        """Mark an urgent writer of this process as waiting, for the other processes."""
        mark = self._files()[1]
        with self._guard:
            self._urgent_waiting += 1
            if self._urgent_waiting == 1:
                fcntl.flock(mark, fcntl.LOCK_SH)  # never waits: nobody takes it exclusively
        try:
            yield
        finally:
            with self._guard:
                self._urgent_waiting -= 1
                if self._urgent_waiting == 0:
                    fcntl.flock(mark, fcntl.LOCK_UN)

    def _other_urgent(self, probe: int) -> bool:
        """Whether another process's urgent writer waits (ours wait behind this writer)."""
        if self._urgent_waiting:
            return False  # our own mark would answer; this process's queue decided already
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False

    def acquire(self, timeout: float, *, urgent: bool = False) -> bool:
        """Poll for the lock every millisecond for up to ``timeout`` seconds."""
        fd, _mark, probe = self._files()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not urgent and self._other_urgent(probe):
                    raise BlockingIOError  # noqa: TRY301 - waits as for the lock itself
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_POLL_SECONDS)
            else:
                return True

    def is_urgently_waited_for(self) -> bool:
        """Whether another process's urgent writer (an SMTP commit) waits for the lock."""
        return self._other_urgent(self._files()[2])

    def release(self) -> None:
        """Unlock (held by this process, so the descriptor is open)."""
        if self._fds is not None:
            fcntl.flock(self._fds[0], fcntl.LOCK_UN)


_queues: dict[str, WriteQueue] = {}
_queues_guard = threading.Lock()


def write_queue_for(engine: Engine) -> WriteQueue:
    """One queue per database file in this process, shared by every engine on it.

    Its file lock is ``<database>-writer``, next to the database and its ``-wal``.
    """
    key = engine.url.database or ""
    if key in {"", ":memory:"}:
        return WriteQueue()  # a private database: nobody else to queue behind
    with _queues_guard:
        queue = _queues.get(key)
        if queue is None:
            queue = _queues[key] = WriteQueue()
            queue.file_lock = FileLock(f"{key}-writer")
        return queue


def is_waited_for(engine: Engine) -> bool:
    """Whether a writer waits for the write lock the caller's transaction holds.

    A writer of this process queued for it, or another process's urgent writer (an
    SMTP commit); another process's other writers are not seen, and wait their turn.
    False for a database without a write queue (PostgreSQL locks rows, not the file).
    """
    if engine.dialect.name != "sqlite":
        return False
    queue = _queues.get(engine.url.database or "")
    if queue is None:
        return False
    if queue.is_waited_for():
        return True
    return queue.file_lock is not None and queue.file_lock.is_urgently_waited_for()


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """Transactions begun in this block (this thread) go ahead in the queue: SMTP commits."""
    before = getattr(_local, "urgent", False)
    _local.urgent = True
    try:
        yield
    finally:
        _local.urgent = before


def install_write_queue(engine: Engine, queue: WriteQueue, timeout: float) -> None:
    """Take ``queue``, then its file lock, before BEGIN IMMEDIATE; free both after COMMIT/ROLLBACK.

    The dialect's commit and rollback are wrapped rather than hooked by events, because
    the ``commit`` event fires before the COMMIT (and its fsync) has run. Register this
    before the listener that sends BEGIN IMMEDIATE: listeners run in the order added.
    """
    dialect = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def release(dbapi_conn: Any) -> None:
        try:
            info = dbapi_conn.info
        except (AttributeError, NotImplementedError):  # a bare connection, during connect
            return
        _give_back(info, queue)

    def take(conn: Any) -> None:
        # A thread that holds the lock and opens a second transaction would wait for
        # itself: let it go on to SQLite's busy timeout and its error, as before.
        if queue.owner == threading.get_ident():
            return
        is_urgent = getattr(_local, "urgent", False)
        file_lock = queue.file_lock
        marked = file_lock.urgent_waiting() if file_lock and is_urgent else contextlib.nullcontext()
        with marked:
            # A lock not granted in time (a long transaction) falls back to SQLite's wait.
            if not queue.acquire(timeout, urgent=is_urgent):
                return
            info = conn.connection.info
            info[_HOLDS_LOCK] = True
            if file_lock is not None and file_lock.acquire(timeout, urgent=is_urgent):
                info[_HOLDS_FILE_LOCK] = True

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
    event.listen(engine, "checkin", lambda _conn, record: _release_record(record, queue))
    event.listen(engine, "invalidate", lambda _conn, record, _exc: _release_record(record, queue))


def _release_record(record: Any, queue: WriteQueue) -> None:
    if record is not None:
        _give_back(record.info, queue)


def _give_back(info: dict[str, Any], queue: WriteQueue) -> None:
    # The file lock first: the next writer of this process takes it right after.
    if info.pop(_HOLDS_FILE_LOCK, False) and queue.file_lock is not None:
        queue.file_lock.release()
    if info.pop(_HOLDS_LOCK, False):
        queue.release()


def checkpoint(engine: Engine, *, truncate: bool = False) -> int:
    """Copy what the WAL holds into the database file (PASSIVE: waits for nobody).

    Runs outside any transaction and outside the queue: writers go on appending to the
    WAL meanwhile. Returns the number of WAL frames left uncopied (0: all of it).

    ``truncate``: when everything was copied, also cut the WAL file back to zero bytes
    (TRUNCATE). SQLite reuses the WAL from its start but never shrinks it, so a burst of
    large mails would leave a file of that size for good. The caller asks only when the
    database is idle, since TRUNCATE waits for readers and holds writers meanwhile.
    """
    if engine.dialect.name != "sqlite":
        return 0
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        row = cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        left = max(int(row[1]) - int(row[2]), 0) if row else 0
        if truncate and left == 0 and row is not None and int(row[1]) > 0:
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cur.close()
    finally:
        conn.close()
    return left


def wal_state(engine: Engine) -> tuple[int, int] | None:
    """The WAL file's size and modification time in ns (None: not SQLite or in memory)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return None
    try:
        found = Path(f"{database}-wal").stat()
    except OSError:
        return (0, 0)
    return (found.st_size, found.st_mtime_ns)


def wal_bytes(engine: Engine) -> int | None:
    """The size of the SQLite write-ahead log on disk (None: not SQLite, or in memory)."""
    state = wal_state(engine)
    return None if state is None else state[0]
