"""Several analysis workers (``SandboxPool``): side by side, each message its own bounds.

Real worker processes with the test target of ``poison_targets``.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest

from ingest.analysis.pool import SandboxPool
from ingest.analysis.sandbox import Limits, Sandbox
from ingest.mime.parse import parse_message
from sla.policy import Priority
from tests.faults.poison_targets import misbehaving
from tests.faults.test_poison import mail
from tests.faults.test_sandbox_depth import outcome, settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from concurrent.futures import Future
    from pathlib import Path

    from ingest.analysis.core import Analysis

    MakePool = Callable[[int, Limits], SandboxPool]

pytestmark = pytest.mark.timeout(120)

ROOMY = Limits(timeout=timedelta(seconds=30), memory_mb=256)


@pytest.fixture
def make() -> Iterator[MakePool]:
    """Pools of sandboxes with the misbehaving target, closed after the test."""
    made: list[SandboxPool] = []

    def factory(size: int, limits: Limits) -> SandboxPool:
        pool = SandboxPool([Sandbox(settings(), limits, target=misbehaving) for _ in range(size)])
        made.append(pool)
        return pool

    yield factory
    for pool in made:
        pool.close()


def run_in_order(pool: SandboxPool, raws: list[bytes]) -> list[Future[Analysis]]:
    """Submit everything, then wait for each in order, as the processor's pipeline does."""
    futures = [pool.submit(raw, null_sender=False) for raw in raws]
    for future in futures:
        pool.run_until(future)
    return futures


def together(subject: str, folder: Path) -> bytes:
    """A message whose analysis waits (bounded) until another worker has begun one too."""
    msg = EmailMessage()
    msg["From"] = "alice@customer.example"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["X-Poison"] = "together"
    msg["X-Stamp-Dir"] = str(folder)
    msg.set_content("Hello.")
    return msg.as_bytes()


def test_two_workers_analyse_side_by_side(make: MakePool, tmp_path: Path) -> None:
    """Each of two messages goes to its own worker, and both are worked on at once.

    Waited for in order, as the processor does: the second worker is fed by its own
    thread, not only once the first message is done (then each would see itself alone).
    """
    pool = make(2, ROOMY)
    futures = run_in_order(pool, [together("first", tmp_path), together("second", tmp_path)])
    assert [outcome(f) for f in futures] == ["first", "second"]
    seen = sorted(p.read_text(encoding="ascii") for p in tmp_path.glob("*.seen"))
    assert seen == ["2", "2"]
    assert pool.restarts == 2  # one start each


def test_every_message_gets_its_own_analysis_in_order(make: MakePool) -> None:
    """Nine messages over three workers: each future holds its own message's analysis."""
    pool = make(3, ROOMY)
    subjects = [f"message {n}" for n in range(9)]
    futures = run_in_order(pool, [mail(s) for s in subjects])
    assert [outcome(f) for f in futures] == subjects
    assert [s.restarts for s in pool.sandboxes] == [1, 1, 1]


def test_a_poison_message_fails_alone_and_its_worker_is_replaced(make: MakePool) -> None:
    """A message that spins past its bound fails; the messages around it, in both workers, don't."""
    pool = make(2, Limits(timeout=timedelta(seconds=1), memory_mb=256))
    raws = [mail("one"), mail("two"), mail("spins", marker="spin"), mail("four"), mail("five")]
    futures = run_in_order(pool, raws)
    assert [outcome(f) for f in futures] == ["one", "two", "poison: exceeded 1 s", "four", "five"]
    assert pool.restarts == 3  # two starts, and a fresh worker after the timeout


def test_priority_is_answered_by_a_worker(make: MakePool) -> None:
    """A priority request (the case work's, for a message analysed earlier) gets its answer."""
    pool = make(2, ROOMY)
    decision = pool.priority(parse_message(mail("Production is down", body="Everything fails.")))
    assert decision.priority is Priority.HIGH


CLOSED = "RuntimeError: the analysis worker was closed"


def test_closing_fails_what_was_not_answered(make: MakePool) -> None:
    """Requests still queued when the pool closes fail as closed; none is left waiting."""
    pool = make(2, ROOMY)
    futures = [pool.submit(mail(f"late {n}", marker="slow"), null_sender=False) for n in range(6)]
    pool.close()
    outcomes = [outcome(f) for f in futures]
    assert set(outcomes) <= {CLOSED} | {f"late {n}" for n in range(6)}, outcomes
    assert outcomes[-2:] == [CLOSED, CLOSED]  # each pump had one step at most


def test_a_thread_waiting_in_order_sees_closed_not_missing(make: MakePool) -> None:
    """Closing while the pipeline waits: its message fails as closed, promptly.

    The pipeline thread would otherwise take the worker back before close (close then
    waited for every message), and, woken after close, find its message in no queue.
    """
    pool = make(2, ROOMY)
    futures = [pool.submit(mail(f"slow {n}", marker="slow"), null_sender=False) for n in range(8)]
    waited: list[str] = []

    def pipeline() -> None:
        for future in futures:
            try:
                pool.run_until(future)
            except RuntimeError as exc:
                waited.append(str(exc))
                return

    thread = threading.Thread(target=pipeline)
    thread.start()
    futures[0].result(timeout=30)  # the workers are busy: close comes mid-conversation
    pool.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    outcomes = [outcome(f) for f in futures]
    assert outcomes[-1] == CLOSED  # not carried out first
    assert "run_until: the future was not submitted here" not in waited
    assert all(o == CLOSED or o.startswith("slow ") for o in outcomes), outcomes


def test_a_closed_pool_stays_closed(make: MakePool) -> None:
    """After close, a submit fails at once and a start starts nothing."""
    pool = make(2, ROOMY)
    pool.close()
    late = pool.submit(mail("too late"), null_sender=False)
    assert outcome(late) == CLOSED
    pool.start()
    assert not any(s.has_worker for s in pool.sandboxes)


def test_priority_goes_to_a_worker_with_nothing_to_do(make: MakePool) -> None:
    """While one worker spins on a message, the case work's priority goes to the other."""
    pool = make(2, Limits(timeout=timedelta(seconds=20), memory_mb=256))
    pool.start()
    spinning = pool.submit(mail("spins", marker="spin"), null_sender=False)
    quick = pool.submit(mail("quick"), null_sender=False)  # the other worker's; next turn: 0
    pool.run_until(quick)
    busy = pool.sandboxes[0]
    for _ in range(100):  # until the spinning message is in flight (bounded)
        if busy.most_in_flight:
            break
        time.sleep(0.05)
    decision = pool.priority(parse_message(mail("Production is down", body="Everything fails.")))
    assert decision.priority is Priority.HIGH
    assert not spinning.done()  # answered without waiting out the spin


def test_a_crash_is_its_own_message_s_in_a_pool(make: MakePool) -> None:
    """A message that kills its worker fails alone; the rest, in both workers, go on."""
    pool = make(2, ROOMY)
    raws = [mail("one"), mail("two"), mail("dies", marker="crash"), mail("four"), mail("five")]
    outcomes = [outcome(f) for f in run_in_order(pool, raws)]
    assert outcomes[:2] == ["one", "two"]
    assert outcomes[2].startswith("poison: crashed the worker")
    assert outcomes[3:] == ["four", "five"]


def test_a_future_from_elsewhere_is_refused(make: MakePool) -> None:
    """run_until on a future this pool never queued is a bug, and says so."""
    pool = make(2, ROOMY)
    stranger = Sandbox(settings(), ROOMY, target=misbehaving).submit(mail("x"), null_sender=False)
    with pytest.raises(RuntimeError, match="not submitted here"):
        pool.run_until(stranger)


def test_a_pool_needs_a_sandbox() -> None:
    """An empty pool would lose every message: refused when it is built."""
    with pytest.raises(ValueError, match="at least one"):
        SandboxPool([])
