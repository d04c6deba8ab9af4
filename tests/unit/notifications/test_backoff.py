"""Retry backoff: exponential ceiling, full jitter, cap, immutability."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.backoff import Backoff

BASE = timedelta(seconds=30)
CAP = timedelta(hours=1)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (7, 1920), (8, 3600), (9, 3600)],
)
def test_ceiling_doubles_until_the_cap(attempt: int, ceiling: int) -> None:
    """The ceiling starts at base, doubles per attempt and stops at the cap."""
    assert Backoff(attempt, BASE, CAP).ceiling() == timedelta(seconds=ceiling)


@given(attempt=st.integers(min_value=1, max_value=10_000), seed=st.integers())
def test_delay_is_within_zero_and_ceiling(attempt: int, seed: int) -> None:
    """Full jitter: every delay lies in [0, ceiling], however many attempts."""
    backoff = Backoff(attempt, BASE, CAP)
    delay = backoff.delay(random.Random(seed))
    assert timedelta(0) <= delay <= backoff.ceiling() <= CAP


def test_delay_is_deterministic_for_a_seeded_rng() -> None:
    """The same seed gives the same delay, so tests can pin it."""
    backoff = Backoff(3, BASE, CAP)
    assert backoff.delay(random.Random(7)) == backoff.delay(random.Random(7))


def test_delays_spread_out() -> None:
    """Jitter spreads retries: many draws are not all the same."""
    rng = random.Random(1)
    delays = {Backoff(5, BASE, CAP).delay(rng) for _ in range(50)}
    assert len(delays) > 40


def test_increment_returns_a_new_value() -> None:
    """increment() leaves the original untouched and counts one more attempt."""
    first = Backoff(1, BASE, CAP)
    second = first.increment()
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.ceiling() == 2 * first.ceiling()


def test_backoff_is_frozen() -> None:
    """A backoff value cannot be changed in place."""
    backoff = Backoff()
    with pytest.raises(dataclasses.FrozenInstanceError):
        backoff.attempt = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0},
        {"base": timedelta(0)},
        {"base": timedelta(minutes=5), "cap": timedelta(minutes=1)},
    ],
)
def test_nonsense_is_refused(kwargs: dict[str, object]) -> None:
    """Attempt below 1, a zero base or a cap below the base raise ValueError."""
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]
