"""The in-process write queue: arrival order, urgent writers first, bounded waits."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from storage.write_queue import FileLock, WriteQueue

if TYPE_CHECKING:
    from pathlib import Path

WAIT = 5.0  # seconds: every wait in these tests is bounded


def _waiter(queue: WriteQueue, name: str, order: list[str], *, urgent: bool) -> threading.Thread:
    def run() -> None:
        assert queue.acquire(WAIT, urgent=urgent)
        order.append(name)
        queue.release()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _queued(queue: WriteQueue, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while len(queue._urgent) + len(queue._waiters) < count:
        assert time.monotonic() < deadline, "waiters did not queue"
        time.sleep(0.001)


def test_waiters_are_served_in_arrival_order() -> None:
    """Five writers queued one after another get the lock in that order."""
    queue = WriteQueue()
    assert queue.acquire(WAIT)
    order: list[str] = []
    threads = []
    for n in range(5):
        threads.append(_waiter(queue, f"w{n}", order, urgent=False))
        _queued(queue, n + 1)
    queue.release()
    for t in threads:
        t.join(WAIT)
    assert order == ["w0", "w1", "w2", "w3", "w4"]


def test_urgent_waiters_go_first_in_their_own_order() -> None:
    """SMTP commits overtake a stage that queued before them, and keep their own order."""
    queue = WriteQueue()
    assert queue.acquire(WAIT)
    order: list[str] = []
    threads = [_waiter(queue, "stage1", order, urgent=False)]
    _queued(queue, 1)
    threads.append(_waiter(queue, "smtp1", order, urgent=True))
    _queued(queue, 2)
    threads.append(_waiter(queue, "smtp2", order, urgent=True))
    _queued(queue, 3)
    queue.release()
    for t in threads:
        t.join(WAIT)
    assert order == ["smtp1", "smtp2", "stage1"]


def test_a_wait_that_times_out_leaves_the_queue_and_the_lock_works_on() -> None:
    """A waiter that gives up is not handed the lock later."""
    queue = WriteQueue()
    assert queue.acquire(WAIT)
    began = time.monotonic()
    assert queue.acquire(0.05) is False
    assert time.monotonic() - began < WAIT
    queue.release()
    assert queue.acquire(0.05)  # free again: the timed-out waiter is not owed the lock
    queue.release()


def test_the_owner_is_the_holding_thread_and_cleared_on_release() -> None:
    """The owner is what lets a thread's second transaction skip the queue."""
    queue = WriteQueue()
    assert queue.acquire(WAIT)
    assert queue.owner == threading.get_ident()
    queue.release()
    assert queue.owner is None


def test_the_file_lock_is_exclusive_and_its_wait_bounded(tmp_path: Path) -> None:
    """Two open files on one path exclude each other (as two processes do); waits end."""
    path = tmp_path / "db-writer"
    first, second = FileLock(str(path)), FileLock(str(path))
    assert first.acquire(WAIT)
    assert path.stat().st_mode & 0o777 == 0o600
    started = time.monotonic()
    assert not second.acquire(0.05)
    assert 0.05 <= time.monotonic() - started < WAIT
    first.release()
    assert second.acquire(WAIT)
    second.release()


def test_a_writer_leaves_the_file_lock_to_another_process_urgent_writer(tmp_path: Path) -> None:
    """While another process's SMTP commit waits, a stage's writer does not take the lock."""
    path = str(tmp_path / "db-writer")
    smtp, stage = FileLock(path), FileLock(path)  # two open files: as two processes
    with smtp.urgent_waiting():
        assert not stage.acquire(0.05)  # the lock is free, but an urgent writer waits
        assert stage.acquire(WAIT, urgent=True)  # urgent writers only queue among themselves
        stage.release()
    assert stage.acquire(WAIT)
    stage.release()
