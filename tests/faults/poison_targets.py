"""Test-only analysis functions that misbehave on a marker header, run inside the worker."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from ingest.analysis.sandbox import analyse_entry

if TYPE_CHECKING:
    from ingest.analysis.core import Analysis, AnalysisSettings

SPIN_SECONDS = 60.0
SLOW_SECONDS = 0.6  # under a 1 s bound alone; over it if counted from an earlier sending
ALLOC_STEP = 16 * 1024 * 1024
ALLOC_STEPS = 4096  # 64 GiB: far past any test's memory bound, so the bound always trips first


def misbehaving(raw: bytes, settings: AnalysisSettings, null_sender: bool) -> Analysis:
    """The real analysis, except for messages that carry an ``X-Poison`` marker."""
    if b"X-Poison: spin" in raw:
        time.sleep(SPIN_SECONDS)  # stands in for a parser stuck in a super-linear loop
    if b"X-Poison: slow" in raw:
        time.sleep(SLOW_SECONDS)
    if b"X-Poison: alloc" in raw:
        hoard = [bytearray(ALLOC_STEP) for _ in range(ALLOC_STEPS)]
        del hoard
    if b"X-Poison: unreadable" in raw:
        return _Unreadable()  # type: ignore[return-value]
    if b"X-Poison: crash" in raw:
        os._exit(70)  # a crash in C code: no reply, the pipe just closes
    return analyse_entry(raw, settings, null_sender)


class _Unreadable:
    """A reply the parent cannot unpickle: rebuilding it raises."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_explode, ())


def _explode() -> None:
    raise ValueError("this reply cannot be read")
