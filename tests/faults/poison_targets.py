"""Test-only analysis functions that misbehave on a marker header, run inside the worker."""

from __future__ import annotations

import os
import time
from pathlib import Path
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
    if b"X-Poison: together" in raw:
        _wait_for_company(raw)
    if b"X-Poison: unreadable" in raw:
        return _Unreadable()  # type: ignore[return-value]
    if b"X-Poison: crash" in raw:
        os._exit(70)  # a crash in C code: no reply, the pipe just closes
    return analyse_entry(raw, settings, null_sender)


TOGETHER_SECONDS = 20.0


def _wait_for_company(raw: bytes) -> None:
    """Mark this worker as started, wait (bounded) for another to start, write what it saw.

    The message names the directory in ``X-Stamp-Dir``. Two workers that run side by
    side each see two marks; a worker run after the other sees only its own, after the
    wait runs out.
    """
    line = next(x for x in raw.split(b"\n") if x.startswith(b"X-Stamp-Dir: "))
    folder = Path(line.split(b": ", 1)[1].strip().decode())
    (folder / f"{os.getpid()}.started").touch()
    deadline = time.monotonic() + TOGETHER_SECONDS
    while len(list(folder.glob("*.started"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = len(list(folder.glob("*.started")))
    (folder / f"{os.getpid()}.seen").write_text(str(seen), encoding="ascii")


class _Unreadable:
    """A reply the parent cannot unpickle: rebuilding it raises."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_explode, ())


def _explode() -> None:
    raise ValueError("this reply cannot be read")
