"""The analysis worker's side: a fresh interpreter that answers one request at a time.

The parent (``ingest.analysis.sandbox.Sandbox``) sends requests over a socket pair and
may send the next before it has read the last reply. The worker still reads a request
only after it has replied to the one before: what happens while reading one (a message
too big for the memory cap) is then that request's, and the order of replies is the
order of requests.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ingest.analysis.core import prioritise
from ingest.priority.features import prepare

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest.analysis.core import Analysis, AnalysisSettings

    AnalyseFn = Callable[[bytes, AnalysisSettings, bool], Analysis]

_MIB = 1024 * 1024

MAIN = "import sys; from ingest.analysis.worker import serve_worker; serve_worker(int(sys.argv[1]))"


def serve_worker(fd: int) -> None:
    """The worker process's entry point: set up from the parent's first messages, then serve."""
    conn = Connection(fd)
    sys.path[:] = conn.recv()
    settings, memory_mb, target = conn.recv()
    _cap_memory(memory_mb)
    # The detection plan of the priority rules (~1,700 patterns' literal words) is built
    # now, at start-up, not inside the first message's time bound.
    prepare(settings.priority_rules.features)
    conn.send("ready")
    _serve(conn, settings, target)


def _serve(conn: Connection, settings: AnalysisSettings, target: AnalyseFn) -> None:
    """The worker's loop: one request, one reply, until the parent closes the pipe."""
    while True:
        try:
            request = conn.recv()  # a message bigger than the cap fails here already
            reply = _answer(request, settings, target)
        except (EOFError, OSError):
            return
        except MemoryError:
            with contextlib.suppress(MemoryError, OSError):
                conn.send(("memory", None))
            return
        except Exception as exc:  # noqa: BLE001 - a bug in one message's analysis, reported to the parent
            reply = ("error", f"{type(exc).__name__}: {exc}"[:2000])
        conn.send(reply)


def _answer(request: tuple[Any, ...], settings: AnalysisSettings, target: AnalyseFn) -> Any:
    if request[0] == "analyse":
        return ("ok", target(request[1], settings, request[2]))
    return ("ok", prioritise(request[1], settings))


def _cap_memory(memory_mb: int) -> None:
    """Cap the address space at its size now plus ``memory_mb`` (Linux; elsewhere unlimited)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:  # noqa: PTH123 - one tiny read
            pages = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return
    limit = pages * os.sysconf("SC_PAGE_SIZE") + memory_mb * _MIB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
