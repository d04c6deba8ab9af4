"""A stage's loop: runs again at once after work, waits when idle, backs off after failures."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from structlog.testing import capture_logs

from mail2case.service.daemon import MAX_BACKOFF_SECONDS, Stage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime

FAIL = -1  # a pass that raises, in a script of passes


def scripted(passes: Iterable[int]) -> Callable[[datetime], int]:
    """A ``run_once`` that returns the scripted counts in turn, raising where it says FAIL."""
    script = iter(passes)

    def run_once(now: datetime) -> int:
        del now
        n = next(script)
        if n == FAIL:
            raise RuntimeError("the database is gone")
        return n

    return run_once


def run_stage(
    interval: float, passes: list[int], waits_before_stop: int
) -> tuple[Stage, list[float]]:
    """Run a stage over ``passes``; its waits are recorded, not slept, and the last one stops it."""
    stop = asyncio.Event()
    waits: list[float] = []

    async def wait(stop_: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
        del stop_, wake
        waits.append(seconds)
        if len(waits) == waits_before_stop:
            stop.set()

    stage = Stage("test", scripted(passes), interval, wait=wait)
    asyncio.run(asyncio.wait_for(stage.run(stop), timeout=5))
    return stage, waits


def test_failing_passes_back_off_doubling_to_the_cap_and_a_good_pass_resets_it() -> None:
    """Each failure waits twice the one before (from twice the interval) up to the cap."""
    passes = [FAIL, FAIL, FAIL, FAIL, 0, FAIL]
    with capture_logs() as logs:
        stage, waits = run_stage(10.0, passes, waits_before_stop=len(passes))
    assert waits == [20.0, 40.0, MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, 10.0, 20.0]
    assert stage.errors == 5
    failures = [e for e in logs if e["event"] == "stage.pass_failed"]
    assert len(failures) == 5
    assert all(e["stage"] == "test" and e["log_level"] == "error" for e in failures)


def test_a_long_interval_still_retries_a_failure_within_the_cap() -> None:
    """A daily stage that fails tries again after the cap, not after two days."""
    _stage, waits = run_stage(24 * 3600.0, [FAIL], waits_before_stop=1)
    assert waits == [MAX_BACKOFF_SECONDS]


def test_a_pass_with_work_runs_again_at_once_and_wakes_the_stages_after_it() -> None:
    """Only an idle pass waits; the passes that handled something set the ``then`` events."""
    stop = asyncio.Event()
    waits: list[float] = []
    after = asyncio.Event()

    async def wait(stop_: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
        del stop_, wake
        waits.append(seconds)
        stop.set()

    stage = Stage("test", scripted([3, 2, 0]), 1.5, then=[after], wait=wait)
    asyncio.run(asyncio.wait_for(stage.run(stop), timeout=5))
    assert waits == [1.5]
    assert stage.handled == 5
    assert after.is_set()


def test_run_returns_promptly_once_stop_is_set_while_waiting() -> None:
    """With the real wait, setting ``stop`` ends a long idle wait at once."""

    async def scenario() -> Stage:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def run_once(now: datetime) -> int:
            del now
            loop.call_soon_threadsafe(stop.set)  # from the pass's worker thread
            return 0

        stage = Stage("test", run_once, 30.0)
        await asyncio.wait_for(stage.run(stop), timeout=5)
        return stage

    stage = asyncio.run(scenario())
    assert stage.last_pass > 0
    assert stage.busy_since is None
