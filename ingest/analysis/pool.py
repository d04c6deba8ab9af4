"""Several analysis workers, the messages dealt to them in turn.

One ``Sandbox`` is one worker process: one core. A bulk run (``mail2case import``, a
mailbox's backlog) on a machine with cores to spare is then held up by the analysis
while the case work waits (measured on the import: the worker busy 1.8 ms a message,
the case work 1.5 ms). ``SandboxPool`` deals the messages to several sandboxes in
turn; each keeps its own two requests in flight, its own deadline and its own memory
cap, so every bound of ``ingest.analysis.sandbox`` holds per message as before.

The processor carries out its analyses in message order (``run_until``, one future
after the other); pumping one sandbox for its message leaves the others working on
theirs, so the workers run side by side.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import structlog

from ingest.analysis.sandbox import Sandbox, fail_quietly

if TYPE_CHECKING:
    from collections.abc import Sequence
    from concurrent.futures import Future

    from ingest.analysis.core import Analysis, AnalysisSettings
    from ingest.mime.parsed import ParsedMail
    from ingest.priority.inference import PriorityDecision


log = structlog.get_logger("mail2case.analysis")


class SandboxPool:
    """The ``Analyser`` of several sandboxes. Thread-safe, as each sandbox is."""

    runs_elsewhere = True

    def __init__(self, sandboxes: Sequence[Sandbox]) -> None:
        if not sandboxes:
            raise ValueError("a pool needs at least one sandbox")
        self.sandboxes = tuple(sandboxes)
        self._lock = threading.Lock()
        self._turn = 0
        self._closed = False
        # One thread per sandbox talks to its worker, so none waits on another's message.
        self._pumps = [
            ThreadPoolExecutor(1, thread_name_prefix=f"analysis-{n}") for n in range(len(sandboxes))
        ]
        # Which sandbox a future is queued in; weak, so an answered future is not kept.
        self._owner: weakref.WeakKeyDictionary[Future[Analysis], Sandbox] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def settings(self) -> AnalysisSettings:
        """The settings the workers analyse with (the same in each)."""
        return self.sandboxes[0].settings

    @property
    def restarts(self) -> int:
        """Worker starts, first ones included (as ``Sandbox.restarts``), all sandboxes."""
        return sum(s.restarts for s in self.sandboxes)

    @property
    def most_in_flight(self) -> int:
        """The most requests one worker held at once."""
        return max(s.most_in_flight for s in self.sandboxes)

    def analyse(self, raw: bytes, *, null_sender: bool) -> Analysis:
        """Analyse ``raw`` in the next worker; PoisonError when it is out of bounds."""
        future = self.submit(raw, null_sender=null_sender)
        self.run_until(future)
        return future.result()

    def submit(self, raw: bytes, *, null_sender: bool) -> Future[Analysis]:
        """Queue the analysis of ``raw`` in the next sandbox in turn.

        Once the pool is closed, the future comes back failed ("closed"), as from a
        closed sandbox.
        """
        with self._lock:
            index = self._next_index()
            sandbox = self.sandboxes[index]
            future = sandbox.submit(raw, null_sender=null_sender)
            if not self._closed:
                self._owner[future] = sandbox
                self._pumps[index].submit(_pump, sandbox, future)
        return future

    def run_until(self, future: Future[Analysis]) -> None:
        """Talk to the sandbox that holds ``future`` until it is done."""
        with self._lock:
            sandbox = self._owner.get(future)
        if sandbox is None:
            if future.done():
                return
            raise RuntimeError("run_until: the future was not submitted here")
        sandbox.run_until(future)

    def priority(self, mail: ParsedMail) -> PriorityDecision:
        """The priority of ``mail``, in the worker with the least work queued.

        The case work waits for it inside its transaction: not behind a worker busy
        with a slow message while another has nothing to do.
        """
        sandbox = min(self.sandboxes, key=lambda s: s.load)
        return sandbox.priority(mail)

    def reconfigure(self, settings: AnalysisSettings) -> None:
        """Every worker uses ``settings`` from its next message on."""
        for sandbox in self.sandboxes:
            sandbox.reconfigure(settings)

    def start(self) -> None:
        """Start the workers not running, side by side: each is a fresh interpreter.

        Called before every claim: a pool whose workers run returns at once.
        """
        if self._closed:
            return
        idle = [s for s in self.sandboxes if not s.has_worker]
        if len(idle) <= 1:
            for sandbox in idle:
                sandbox.start()
            return
        with ThreadPoolExecutor(len(idle), thread_name_prefix="analysis-start") as ex:
            started = [ex.submit(s.start) for s in idle]
        for done in started:
            done.result()  # the first failure, once every start has ended

    def close(self) -> None:
        """Stop the workers for good; what they had not answered fails."""
        with self._lock:
            self._closed = True
        try:
            for sandbox in self.sandboxes:
                sandbox.close()  # prompt: one step of its conversation at most
        finally:
            for pump in self._pumps:
                pump.shutdown(wait=True)

    def _next_index(self) -> int:
        index = self._turn % len(self.sandboxes)
        self._turn += 1
        return index


def _pump(sandbox: Sandbox, future: Future[Analysis]) -> None:
    """In the sandbox's own thread: talk to its worker until ``future`` is done."""
    try:
        sandbox.run_until(future)
    except Exception as exc:  # noqa: BLE001 - the message's: its case work sees it
        log.warning("analysis.pump_failed", error=f"{type(exc).__name__}: {exc}"[:500])
        fail_quietly(future, exc)
