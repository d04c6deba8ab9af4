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
   runs in one long-lived child process (``Sandbox``, its side in
   ``ingest.analysis.worker``): the parent sends the raw bytes over a socket pair
   and receives the picklable ``Analysis``. The child caps its own address space
   with ``RLIMIT_AS`` (its size at start plus ``message_memory_mb``); the parent
   waits at most ``message_timeout_seconds`` for each reply.
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

**Two requests in flight.** The parent sends the next message before it has read
the reply to the last one, so the worker goes from one message to the next without
waiting for the parent (which is busy with case work, and must win the GIL back to
read a reply and send the next request: measured, the worker idled a third of the
time). The worker still reads a request only after replying to the one before, so
replies come in the order of the requests and each failure is the request's it
was working on:

- the deadline of a request runs from the moment the reply before it arrived (or
  from its sending, when nothing was ahead of it): from when the worker began it;
- a crash or a ``MemoryError`` is the oldest unanswered request's; the one behind it
  was never started, and is sent again to the fresh worker.

Both sides writing big messages at once could wait for each other forever (the
worker writing a reply nobody reads while the parent writes a request nobody
reads), so the parent writes without blocking and reads a reply whenever its write
cannot go on.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.reduction import ForkingPickler
from typing import TYPE_CHECKING, Any, Protocol

from ingest.analysis import interpreters, worker
from ingest.analysis.core import Analysis, AnalysisSettings, analyse, prioritise
from ingest.errors import PoisonError
from ingest.priority.features import prepare

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterator
    from multiprocessing.connection import Connection

    from ingest.mime.parsed import ParsedMail
    from ingest.priority.inference import PriorityDecision

    AnalyseFn = Callable[[bytes, AnalysisSettings, bool], Analysis]

_STOP_TIMEOUT = 5.0
_START_TIMEOUT = 60.0
# Requests the worker holds at once: the one it works on and the one it takes next.
DEPTH = 2
# The biggest payload a frame gives with a 4-byte length; bigger ones get 8 more bytes.
_SHORT_FRAME = 0x7FFFFFFF


class Analyser(Protocol):
    """Runs the pure analysis of a message; raises PoisonError when it is out of bounds."""

    # True when the analysis runs on another core, so the processor feeds it ahead of its
    # case work (pipelining); False when it runs in the calling thread.
    runs_elsewhere: bool

    def analyse(self, raw: bytes, *, null_sender: bool) -> Analysis:
        """Parse, classify and (for likely new cases) prioritise ``raw``."""

    def submit(self, raw: bytes, *, null_sender: bool) -> Future[Analysis]:
        """Queue the analysis of ``raw``; ``run_until`` carries it out."""

    def run_until(self, future: Future[Analysis]) -> None:
        """Carry out the queued analyses, in order, until ``future`` (one of them) is done."""

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
    """The analysis in the calling thread, unbounded (one-shot CLI commands, tests).

    ``submit`` only queues; the analysis runs in the thread that calls ``run_until``.
    """

    runs_elsewhere = False

    def __init__(self, settings: AnalysisSettings) -> None:
        self.settings = settings
        _prepare(settings)
        self._queued: deque[tuple[Future[Analysis], bytes, bool]] = deque()
        self._lock = threading.Lock()

    def analyse(self, raw: bytes, *, null_sender: bool) -> Analysis:
        """Parse, classify and (for likely new cases) prioritise ``raw``."""
        return analyse(raw, self.settings, null_sender=null_sender)

    def submit(self, raw: bytes, *, null_sender: bool) -> Future[Analysis]:
        """Queue the analysis of ``raw``."""
        future: Future[Analysis] = Future()
        with self._lock:
            self._queued.append((future, raw, null_sender))
        return future

    def run_until(self, future: Future[Analysis]) -> None:
        """Analyse the queued messages in order until ``future`` is done."""
        while not future.done():
            with self._lock:
                if not self._queued:
                    raise RuntimeError("run_until: the future was not submitted here")
                queued, raw, null_sender = self._queued.popleft()
            try:
                _resolve(queued, self.analyse(raw, null_sender=null_sender))
            except Exception as exc:  # noqa: BLE001 - the message's, handled with its case work
                fail_quietly(queued, exc)

    def priority(self, mail: ParsedMail) -> PriorityDecision:
        """The priority of ``mail``."""
        return prioritise(mail, self.settings)

    def reconfigure(self, settings: AnalysisSettings) -> None:
        """Use ``settings`` from the next message on."""
        _prepare(settings)
        self.settings = settings

    def start(self) -> None:
        """Always ready."""

    def close(self) -> None:
        """Nothing to release."""


@dataclass(eq=False)
class _Request:
    """One request to the worker and the future its reply resolves."""

    message: tuple[Any, ...]
    future: Future[Any] = field(default_factory=Future)


class Sandbox:
    """A long-lived worker process that analyses messages within ``Limits``, two in flight.

    Thread-safe. Any thread may submit; one thread at a time talks to the worker (the
    one in ``run_until``, ``priority``, ``start``, ``reconfigure`` or ``close``), and a
    thread waiting for its future is woken as soon as whoever is talking resolves it.
    The worker is (re)started on demand.
    """

    # The analysis runs on another core: the processor feeds it ahead of its case work.
    runs_elsewhere = True

    def __init__(
        self,
        settings: AnalysisSettings,
        limits: Limits,
        *,
        target: AnalyseFn = analyse_entry,
        depth: int = DEPTH,
    ) -> None:
        self.settings = settings
        self.limits = limits
        self.target = target
        self.depth = depth
        self.restarts = 0
        self.most_in_flight = 0  # the most requests the worker held at once (tests, bench)
        self._cond = threading.Condition()
        self._talking = False  # a thread has the right to talk to the worker
        self._starting = False  # and is starting it
        self._closing = False  # close() waits for the right to talk: nobody else takes it
        self._closed = False  # for good: what is queued now fails at once
        self._unsent: deque[_Request] = deque()  # guarded by _cond
        # The rest below is touched only by the thread that is talking.
        self._in_flight: deque[_Request] = deque()
        self._head_since = 0.0  # when the worker began the oldest request in flight
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._sock: socket.socket | None = None  # the same socket, for writes that never block

    def analyse(self, raw: bytes, *, null_sender: bool) -> Analysis:
        """Analyse ``raw`` in the worker; PoisonError when it runs out of time or memory."""
        future = self.submit(raw, null_sender=null_sender)
        self.run_until(future)
        return future.result()

    def submit(self, raw: bytes, *, null_sender: bool) -> Future[Analysis]:
        """Queue the analysis of ``raw``; nothing is sent until someone runs the queue."""
        return self._queue(_Request(("analyse", raw, null_sender)), is_urgent=False)

    def priority(self, mail: ParsedMail) -> PriorityDecision:
        """The priority of ``mail``, computed in the worker under the same bound.

        It goes ahead of analyses not sent yet: the case work that asks waits for it.
        """
        future = self._queue(_Request(("priority", mail)), is_urgent=True)
        self.run_until(future)
        return future.result()  # type: ignore[no-any-return]

    def run_until(self, future: Future[Any]) -> None:
        """Talk to the worker until ``future`` is done (or wait while another thread does)."""
        while True:
            with self._cond:
                while not future.done() and (self._talking or (self._closing and not self._closed)):
                    self._cond.wait()
                if future.done():
                    return
                if self._closed:
                    raise RuntimeError("the analysis worker was closed")
                if not self._unsent and not self._in_flight:
                    raise RuntimeError("run_until: the future was not submitted here")
                self._talking = True
            try:
                self._step()
            except BaseException:
                # Not one of the failures a request is charged with (those are handled
                # in the step): where the conversation stands is unknown, a frame may be
                # half written. The worker goes; what it held is sent to a fresh one.
                self._send_again()
                self._stop(kill=True)
                raise
            finally:
                self._done_talking()

    def reconfigure(self, settings: AnalysisSettings) -> None:
        """Use ``settings`` from the next message on: the worker restarts with them.

        Requests already sent are sent again, to the worker with the new settings.
        """
        with self._talk():
            if settings != self.settings:
                self.settings = settings
                self._send_again()
                self._stop(kill=True)

    def start(self) -> None:
        """Start the worker if it is not running.

        The processor calls this before it claims messages: a worker's start-up (a fresh
        interpreter and its imports, most of a second) is then no message's attempt. A
        daemon killed during it would otherwise count the kill against the message
        waiting to be analysed, and a few kills soon after start-ups would quarantine
        an innocent message as poison.
        """
        with self._cond:
            # Another thread starting the worker, or talking while none runs (it stopped
            # one, and may start the next): wait, rather than let a claim count a start.
            while self._starting or (self._talking and not self._is_running()):
                self._cond.wait()
            if self._talking or self._closing:
                return  # another thread is talking to the running worker, or it is closed
            self._talking = self._starting = True
        try:
            if not self._in_flight:
                self._ensure_worker()
        finally:
            with self._cond:
                self._starting = False
            self._done_talking()

    def close(self) -> None:
        """Stop the worker for good (it also exits by itself when this process goes away).

        Requests not answered yet fail, and so does any queued from now on: nobody is
        left to carry them out. Close goes next: a thread waiting to talk (the
        processor's pipeline) does not take the worker back first, so closing waits for
        one step of the conversation at most, not for every message queued.
        """
        with self._cond:
            if self._closed:
                return
            self._closing = True
        with self._talk():
            left = [*self._in_flight, *self._take_unsent()]
            self._in_flight.clear()
            self._stop(kill=bool(left))
            with self._cond:
                self._closed = True
            # Before the right to talk is given up: a thread that waits for one of these
            # then finds it failed, not missing from the queues.
            for request in left:
                fail_quietly(request.future, RuntimeError("the analysis worker was closed"))

    @property
    def has_worker(self) -> bool:
        """Whether a worker process runs now (unlocked: a hint, such as for ``start``)."""
        return self._is_running()

    @property
    def load(self) -> int:
        """Requests queued or in flight now (unlocked: a hint for dealing work)."""
        return len(self._unsent) + len(self._in_flight)

    # -- the conversation (only the thread that is talking) --------------------------

    def _step(self) -> None:
        """Send what the worker can take, then read one reply."""
        self._fill()
        if self._in_flight:
            self._receive_one()

    def _fill(self) -> None:
        while len(self._in_flight) < self.depth:
            with self._cond:
                if not self._unsent:
                    return
                request = self._unsent.popleft()
            if request.future.done():
                continue  # its caller gave up on it (failed it): nobody wants the answer
            try:
                frame = _frame(request.message)
            except Exception as exc:  # noqa: BLE001 - an unpicklable request is its own failure
                fail_quietly(request.future, exc)
                continue
            if not self._in_flight:
                try:
                    self._ensure_worker()  # a worker that died idle is started again here
                except OSError as exc:
                    fail_quietly(request.future, exc)
                    continue
                self._head_since = time.monotonic()
            elif not self._is_running():
                # It died with a reply of its own still to read: the reply first, then a
                # fresh worker for this one, which is not to be blamed for the death.
                with self._cond:
                    self._unsent.appendleft(request)
                return
            self._in_flight.append(request)
            self.most_in_flight = max(self.most_in_flight, len(self._in_flight))
            if not self._write(request, frame):
                return

    def _is_running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def _write(self, request: _Request, frame: tuple[bytes, memoryview]) -> bool:
        """Send ``request`` without ever blocking; False when the worker's end cut it short."""
        sock = self._sock
        assert sock is not None  # noqa: S101 - a request in flight has a worker
        for chunk in frame:
            view = memoryview(chunk)
            while view:
                try:
                    view = view[sock.send(view, socket.MSG_DONTWAIT) :]
                except BlockingIOError:
                    if not self._wait_for_room(sock, request):
                        return False
                except OSError:
                    # The worker closed its end: out of memory reading the request, or
                    # crashed. Its reply or the end of the stream, read next, says which.
                    return False
        return True

    def _wait_for_room(self, sock: socket.socket, request: _Request) -> bool:
        """Wait until ``request`` can be written further; False if it no longer should be.

        The worker may be writing the reply to an earlier request, and would wait for us
        to read it while we wait for it to read: read it. The oldest request's deadline
        bounds the wait.
        """
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLOUT)
        events = poller.poll(self._left() * 1000)
        if not events:
            self._time_out_head()
            return False
        if events[0][1] & (select.POLLIN | select.POLLHUP | select.POLLERR):
            worker_before = self._proc
            self._receive_one()
            return self._proc is worker_before and any(r is request for r in self._in_flight)
        return True

    def _receive_one(self) -> None:
        """Read the oldest request's reply (or find that its deadline passed, or a crash)."""
        conn = self._conn
        assert conn is not None  # noqa: S101 - a request in flight has a worker
        try:
            if not conn.poll(self._left()):
                self._time_out_head()
                return
            kind, value = conn.recv()
        except (EOFError, OSError):
            self._give_up_head(PoisonError("crashed", "poison: crashed the worker"), kill=True)
            return
        except Exception as exc:  # noqa: BLE001 - an unreadable reply (a pickle, memory)
            # The stream may stand mid-frame: the request's failure, and a fresh worker.
            self._give_up_head(exc, kill=True)
            return
        if kind == "memory":  # the worker exits after a MemoryError: start afresh
            self._give_up_head(
                PoisonError("memory", f"poison: exceeded {self.limits.memory_mb} MiB"), kill=False
            )
            return
        head = self._in_flight.popleft()
        self._head_since = time.monotonic()  # the worker has begun the next one
        if kind == "error":
            fail_quietly(head.future, RuntimeError(f"analysis failed in the worker: {value}"))
        elif head.message[0] == "analyse" and not isinstance(value, Analysis):
            fail_quietly(head.future, TypeError(f"worker returned {type(value).__name__}"))
        else:
            _resolve(head.future, value)

    def _time_out_head(self) -> None:
        seconds = self.limits.timeout.total_seconds()
        self._give_up_head(PoisonError("timeout", f"poison: exceeded {seconds:g} s"), kill=True)

    def _give_up_head(self, exc: Exception, *, kill: bool) -> None:
        """The oldest request failed with ``exc``: stop the worker; the rest go again."""
        head = self._in_flight.popleft()
        self._send_again()
        self._stop(kill=kill)
        fail_quietly(head.future, exc)

    def _send_again(self) -> None:
        """Put the requests in flight back at the front of the queue, in order."""
        with self._cond:
            self._unsent.extendleft(reversed(self._in_flight))
        self._in_flight.clear()

    def _left(self) -> float:
        elapsed = time.monotonic() - self._head_since
        return max(0.0, self.limits.timeout.total_seconds() - elapsed)

    def _ensure_worker(self) -> None:
        if self._conn is not None and self._is_running():
            return
        self._stop(kill=True)
        with self._cond:
            self._starting = True
        try:
            self._spawn()
        except Exception as exc:
            self._stop(kill=True)
            if isinstance(exc, OSError):
                raise
            # It died while starting (EOF on its first reply, say): no worker either.
            raise OSError(f"the analysis worker did not start: {exc!r}") from exc
        finally:
            with self._cond:
                self._starting = False
                self._cond.notify_all()

    def _spawn(self) -> None:
        proc, conn = interpreters.spawn(worker.MAIN)
        self._proc, self._conn = proc, conn
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))
        self.restarts += 1
        conn.send(list(sys.path))  # first, so that the target below can be unpickled
        conn.send((self.settings, self.limits.memory_mb, self.target))
        # Start-up (imports) is not part of any message's time.
        if not conn.poll(_START_TIMEOUT) or conn.recv() != "ready":
            raise OSError("the analysis worker did not start")  # stopped by the caller

    def _stop(self, *, kill: bool) -> None:
        proc, conn, sock = self._proc, self._conn, self._sock
        self._proc = self._conn = self._sock = None
        if sock is not None:
            sock.close()
        interpreters.stop(proc, conn, kill=kill, timeout=_STOP_TIMEOUT)

    # -- who talks ----------------------------------------------------------------------

    def _queue(self, request: _Request, *, is_urgent: bool) -> Future[Any]:
        with self._cond:
            if self._closed:
                fail_quietly(request.future, RuntimeError("the analysis worker was closed"))
            elif is_urgent:
                self._unsent.appendleft(request)
            else:
                self._unsent.append(request)
        return request.future

    def _take_unsent(self) -> list[_Request]:
        with self._cond:
            taken = list(self._unsent)
            self._unsent.clear()
        return taken

    @contextlib.contextmanager
    def _talk(self) -> Iterator[None]:
        """The right to talk to the worker, waited for."""
        with self._cond:
            while self._talking:
                self._cond.wait()
            self._talking = True
        try:
            yield
        finally:
            self._done_talking()

    def _done_talking(self) -> None:
        with self._cond:
            self._talking = False
            self._cond.notify_all()


def _resolve(future: Future[Any], value: Any) -> None:
    """Give ``future`` its result, unless its caller already gave up on it (failed it)."""
    with contextlib.suppress(InvalidStateError):
        future.set_result(value)


def fail_quietly(future: Future[Any], exc: BaseException) -> None:
    """Fail ``future``, unless it is done already (answered, or given up on)."""
    with contextlib.suppress(InvalidStateError):
        future.set_exception(exc)


def _prepare(settings: AnalysisSettings) -> None:
    """Build the priority rules' detection plan now, at start-up or reload.

    Not when the rules are built: a process that hands the analysis to a worker (the
    daemon, an import) never uses the plan, and it takes a few tenths of a second.
    """
    prepare(settings.priority_rules.features)


def _frame(message: tuple[Any, ...]) -> tuple[bytes, memoryview]:
    """``message`` as ``multiprocessing.connection`` frames it: a length, then the pickle."""
    payload = ForkingPickler.dumps(message)
    size = len(payload)
    header = struct.pack("!i", size) if size <= _SHORT_FRAME else struct.pack("!iQ", -1, size)
    return header, payload
