"""Retry delays as an immutable value: exponential growth, full jitter, a cap."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random

# 2**64 times any sensible base is far past any cap; clamping keeps the float finite.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """How long to wait after the ``attempt``-th failure (urllib3 ``Retry`` style).

    The ceiling doubles from ``base`` with each attempt up to ``cap``; the delay is drawn
    uniformly below it ("full jitter"), so senders that failed together retry apart.
    """

    attempt: int = 1
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.attempt < 1:
            raise ValueError(f"attempt must be at least 1 (got {self.attempt})")
        if self.base <= timedelta(0) or self.cap < self.base:
            raise ValueError(f"need 0 < base <= cap (got base={self.base}, cap={self.cap})")

    def ceiling(self) -> timedelta:
        """The longest delay this attempt may wait."""
        exponent = min(self.attempt - 1, _MAX_EXPONENT)
        seconds = self.base.total_seconds() * 2.0**exponent
        return timedelta(seconds=min(seconds, self.cap.total_seconds()))

    def delay(self, rng: random.Random) -> timedelta:
        """A delay drawn uniformly from ``[0, ceiling]`` with ``rng``."""
        return timedelta(seconds=rng.uniform(0.0, self.ceiling().total_seconds()))

    def increment(self) -> Backoff:
        """The backoff for the next failure."""
        return replace(self, attempt=self.attempt + 1)
