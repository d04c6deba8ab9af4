"""The poison-message bound: the pure analysis runs in a worker under a deadline and a memory cap.

A poison message is one that makes the parser, the classifier or the priority
rules spin or exhaust memory. The design follows GNU Mailman's runners, which
count how often a queue file was picked up before it is processed and shunt it
after too many tries:

1. ``Processor`` commits ``inbound.attempts += 1`` in its own tiny transaction
   *before* the work starts. If the daemon dies mid-message (OOM killer, a
   segfault in C code, SIGKILL), the attempt is still counted; a row that
   reaches ``[processing] max_attempts`` without settling is quarantined with
   ``poison: crashed the worker N times`` the next time it is picked up. The
   same commit stamps ``inbound.claimed_at``: on PostgreSQL other instances
   leave the row alone for a claim period (twice the timeout plus 30 s), so
   one message is analysed once and its count is not inflated by racing peers.
2. The CPU-heavy pure part (parse, classify, priority; ``ingest.analysis.core``)
   runs in one long-lived child process (``Sandbox``): the parent sends the raw
   bytes over a pipe and receives the picklable ``Analysis``. The child caps
   its own address space with ``RLIMIT_AS`` (its size at start plus
   ``message_memory_mb``); the parent waits at most ``message_timeout_seconds``.
3. On a timeout the parent SIGKILLs the child; on ``MemoryError`` the child
   reports it and exits; on a crash the pipe closes. Each raises
   ``PoisonError`` with ``poison: exceeded N s`` / ``poison: exceeded M MiB`` /
   ``poison: crashed the worker N times``; the processor records the reason on
   the row and quarantines it once its attempts reach the limit. A fresh child
   is started for the next message, so the messages behind it go on.

The child is reused for every message, so the bound costs a socket round
trip and a pickle of the result, not a process start. It is a fresh
interpreter (``python -c``), never a fork of the threaded daemon.
``InProcess`` is the unbounded variant for one-shot CLI commands and tests.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol

from ingest.analysis import interpreters
from ingest.analysis.core import Analysis, AnalysisSettings, analyse, prioritise
from ingest.errors import PoisonError
from ingest.priority.features import prepare

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable

    from ingest.mime.parsed import ParsedMail
    from ingest.priority.inference import PriorityDecision

    AnalyseFn = Callable[[bytes, AnalysisSettings, bool], Analysis]

_MIB = 1024 * 1024
_STOP_TIMEOUT = 5.0
_START_TIMEOUT = 60.0


class Analyser(Protocol):
    """Runs the pure analysis of a message; raises PoisonError when it is out of bounds."""

    # True when the analysis runs on another core, so the processor feeds it ahead of its
    # case work (pipelining); False when it runs in the calling thread.
    runs_elsewhere: bool

    def analyse(self, raw: bytes, *, null_sender: bool) -> Analysis:
        """Parse, classify and (for likely new cases) prioritise ``raw``."""

    def priority(self, mail: ParsedMail) -> PriorityDecision:
        """The priority of a message analysed earlier."""

    def reconfigure(self, settings: AnalysisSettings) -> None:
        """Use ``settings`` from the next message on (SIGHUP)."""

    def start(self) -> None:
        """Be ready to analyse (a worker started): called before messages are claimed."""

    def close(self) -> None:
        """Release what the analyser holds."""


def analyse_entry(raw: bytes, settings: AnalysisSettings, null_sender: bool) -> Analysis:  # noqa: FBT001 - positional so a test can pass its own function
    """The analysis a worker runs: ``ingest.analysis.core.analyse``, positionally."""
    return analyse(raw, settings, null_sender=null_sender)


@dataclass(frozen=True)
class Limits:
    """The per-message bound."""

    timeout: timedelta = timedelta(seconds=30)
    memory_mb: int = 1024


class InProcess:
    """The analysis in the calling thread, unbounded (one-shot CLI commands, tests)."""

    runs_elsewhere = False

    def __init__(self, settings: AnalysisSettings) -> None:
        self.settings = settings

    def analyse(self, raw: bytes, *, null_sender: bool) -> Analysis:
        """Parse, classify and (for likely new cases) prioritise ``raw``."""
        return analyse(raw, self.settings, null_sender=null_sender)

    def priority(self, mail: ParsedMail) -> PriorityDecision:
        """The priority of ``mail``."""
        return prioritise(mail, self.settings)

    def reconfigure(self, settings: AnalysisSettings) -> None:
        """Use ``settings`` from the next message on."""
        self.settings = settings

    def start(self) -> None:
        """Always ready."""

    def close(self) -> None:
        """Nothing to release."""


class Sandbox:
    """A long-lived worker process that analyses one message at a time within ``Limits``.

    Thread-safe: one request at a time; the worker is (re)started on demand.
    """

    # The analysis runs on another core: the processor feeds it ahead of its case work.
    runs_elsewhere = True

    def __init__(
        self, settings: AnalysisSettings, limits: Limits, *, target: AnalyseFn = analyse_entry
    ) -> None:
        self.settings = settings
        self.limits = limits
        self.target = target
        self.restarts = 0
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def analyse(self, raw: bytes, *, null_sender: bool) -> Analysis:
        """Analyse ``raw`` in the worker; PoisonError when it runs out of time or memory."""
        result = self._call(("analyse", raw, null_sender))
        if not isinstance(result, Analysis):
            raise TypeError(f"worker returned {type(result).__name__}")
        return result

    def priority(self, mail: ParsedMail) -> PriorityDecision:
        """The priority of ``mail``, computed in the worker under the same bound."""
        return self._call(("priority", mail))  # type: ignore[no-any-return]

    def reconfigure(self, settings: AnalysisSettings) -> None:
        """Use ``settings`` from the next message on: the worker restarts with them."""
        with self._lock:
            if settings != self.settings:
                self.settings = settings
                self._stop(kill=False)

    def start(self) -> None:
        """Start the worker if it is not running.

        The processor calls this before it claims messages: a worker's start-up (a fresh
        interpreter and its imports, most of a second) is then no message's attempt. A
        daemon killed during it would otherwise count the kill against the message
        waiting to be analysed, and a few kills soon after start-ups would quarantine
        an innocent message as poison.
        """
        if not self._lock.acquire(blocking=False):
            return  # busy with a request: the worker is running
        try:
            self._ensure_worker()
        finally:
            self._lock.release()

    def close(self) -> None:
        """Stop the worker (it also exits by itself when this process goes away)."""
        with self._lock:
            self._stop(kill=False)

    def _call(self, request: tuple[Any, ...]) -> Any:
        with self._lock:
            conn = self._ensure_worker()
            try:
                # A worker that ran out of memory reading the request closes the pipe
                # mid-send; its reply, read next, says so.
                with contextlib.suppress(BrokenPipeError):
                    conn.send(request)
                reply = self._receive(conn)
            except (EOFError, OSError):
                self._stop(kill=True)
                raise PoisonError("crashed", "poison: crashed the worker") from None
        kind, value = reply
        if kind == "memory":
            raise PoisonError("memory", f"poison: exceeded {self.limits.memory_mb} MiB")
        if kind == "error":
            raise RuntimeError(f"analysis failed in the worker: {value}")
        return value

    def _receive(self, conn: Connection) -> tuple[str, Any]:
        seconds = self.limits.timeout.total_seconds()
        if not conn.poll(seconds):
            self._stop(kill=True)
            raise PoisonError("timeout", f"poison: exceeded {seconds:g} s")
        reply: tuple[str, Any] = conn.recv()
        if reply[0] == "memory":  # the worker exits after a MemoryError: start afresh
            self._stop(kill=False)
        return reply

    def _ensure_worker(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.poll() is None:
            return self._conn
        self._stop(kill=True)
        proc, conn = interpreters.spawn(_WORKER_MAIN)
        self._proc, self._conn = proc, conn
        self.restarts += 1
        conn.send(list(sys.path))  # first, so that the target below can be unpickled
        conn.send((self.settings, self.limits.memory_mb, self.target))
        # Start-up (imports) is not part of any message's time.
        if not conn.poll(_START_TIMEOUT) or conn.recv() != "ready":
            self._stop(kill=True)
            raise OSError("the analysis worker did not start")
        return conn

    def _stop(self, *, kill: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        interpreters.stop(proc, conn, kill=kill, timeout=_STOP_TIMEOUT)


_WORKER_MAIN = (
    "import sys; from ingest.analysis.sandbox import serve_worker; serve_worker(int(sys.argv[1]))"
)


def serve_worker(fd: int) -> None:
    """The worker process's entry point: set up from the parent's first messages, then serve."""
    conn = Connection(fd)
    sys.path[:] = conn.recv()
    settings, memory_mb, target = conn.recv()
    _cap_memory(memory_mb)
    # Unpickling skips PriorityRules.__post_init__: build the detection plan now, at
    # start-up, not inside the first message's time bound.
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
