"""The process stage in a child process of its own: ``[processing] separate_process``.

One Python process holds one GIL; under an SMTP burst the daemon's was busy all the
time (processing, SMTP sessions, sending), while the second core idled. With this
key on, the daemon's "process" stage asks a child to run each pass and waits for the
answer on a pipe (the wait releases the GIL).

The child is a fresh interpreter (``python -c``, as ``ingest.analysis.sandbox``), in the
daemon's process group, started on demand and again after it died. It opens the
database from the daemon's config, builds the processor as the daemon would (with a
sandbox worker of its own) and, per request, runs the pass ``observed_process_pass``
runs: the pending ids, ``Processor.handle_many``. It returns the outcomes and the log
events seen meanwhile, so that the daemon keeps its metrics; its own log lines go to
the inherited stderr. Writers of both processes share the database through
``storage.write_queue``'s file lock.

A SIGHUP's new settings go with the next request. SIGTERM and SIGINT, which reach
the whole process group, are ignored in the child: the pass in progress finishes
and the daemon then closes the pipe, which ends the child.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from ingest.analysis import interpreters
from storage import inbound

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from datetime import datetime

    from ingest.outcome import Outcome
    from ingest.process import Processor
    from ingest.settings import ProcessSettings
    from mail2case.config.settings import Config
    from mail2case.service.metrics import Metrics

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0
_PARENT_POLL_SECONDS = 0.1
_FIELD_TYPES = (str, int, float, bool, type(None))


def _mapping_proxy(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


def _reduce_mapping_proxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    # Rebuilt by a function of this module: the type itself has no importable name.
    return _mapping_proxy, (dict(proxy),)


# The SLA policy freezes its tables in mapping proxies, which pickle cannot copy by
# itself; registered for the pipe's pickler only, not for pickle at large.
ForkingPickler.register(MappingProxyType, _reduce_mapping_proxy)


class ChildDiedError(RuntimeError):
    """The child exited (or its pipe broke) before answering; the next pass starts another."""


class ProcessChild:
    """The daemon's end: runs passes in the child, one at a time; thread-safe."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.starts = 0
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._sent: ProcessSettings | None = None  # the settings the child runs with

    def run_pass(
        self, now: datetime, settings_now: Callable[[], ProcessSettings]
    ) -> tuple[list[Outcome], float, list[tuple[str, dict[str, Any]]]]:
        """One pass in the child: its outcomes, seconds per message and log events.

        ``settings_now`` is read once the child is up (a start takes a second or so,
        during which a SIGHUP may have replaced them); the child gets them if new.
        """
        with self._lock:
            conn = self._ensure_child()
            settings = settings_now()
            news = None if settings is self._sent else settings
            try:
                conn.send(("pass", now, news))
                reply = conn.recv()  # blocks without the GIL, however long the pass
            except (EOFError, OSError) as exc:
                self._stop(kill=True)
                raise ChildDiedError("the process child died during a pass") from exc
            kind, value, events = reply
            if kind == "ok":  # after a failure they go again: setting them twice is harmless
                self._sent = settings
        if kind == "error":
            raise value  # the child's exception, its traceback in a note
        outcomes, seconds = value
        return outcomes, seconds, events

    def close(self) -> None:
        """Let the pass in progress finish (within a bound), then end the child and wait."""
        if not self._lock.acquire(timeout=_STOP_TIMEOUT):
            proc = self._proc
            if proc is not None:
                proc.kill()  # a pass that does not end: the waiting thread sees EOF
            return
        try:
            self._stop(kill=False)
        finally:
            self._lock.release()

    def _ensure_child(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.poll() is None:
            return self._conn
        self._stop(kill=True)
        proc, conn = interpreters.spawn(_CHILD_MAIN)
        self._proc, self._conn, self._sent = proc, conn, None
        self.starts += 1
        try:
            conn.send(list(sys.path))
            conn.send(self.config)
            # Start-up (imports, opening the database) is not part of any pass.
            if not conn.poll(_START_TIMEOUT) or conn.recv() != "ready":
                raise OSError("the process child did not start")  # noqa: TRY301 - one cleanup below
        except (EOFError, OSError):
            self._stop(kill=True)
            raise
        return conn

    def _stop(self, *, kill: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = self._sent = None
        # The child sees EOF once its pass is done, and exits.
        interpreters.stop(proc, conn, kill=kill, timeout=_STOP_TIMEOUT)


def child_process_pass(
    child: ProcessChild, processor: Processor, metrics: Metrics
) -> Callable[[datetime], int]:
    """The stage's ``run_once``: a pass in the child, counted as ``observed_process_pass`` does.

    ``processor`` is the daemon's own (never run): SIGHUP replaces its settings, and
    the next pass takes them to the child.
    """

    def run_once(now: datetime) -> int:
        outcomes, seconds, events = child.run_pass(now, lambda: processor.settings)
        for event, fields in events:
            metrics.observe_event(event, fields)
        for outcome in outcomes:
            metrics.observe_outcome(outcome, seconds, outcome.opened_as)
        return len(outcomes)

    return run_once


_CHILD_MAIN = (
    "import sys; from mail2case.service.process_child import serve_child; "
    "serve_child(int(sys.argv[1]))"
)


def serve_child(fd: int) -> None:
    """The child's entry point: set up from the daemon's first messages, then serve passes."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # the daemon ends us, after the pass in progress
    conn = Connection(fd)
    try:
        sys.path[:] = conn.recv()
        config: Config = conn.recv()
    except (EOFError, OSError):
        return  # the daemon gave up on us before we started
    from mail2case import app  # noqa: PLC0415 - imported once sys.path is the daemon's
    from mail2case.log_setup import configure_logging  # noqa: PLC0415
    from mail2case.service.metrics import install_event_tap  # noqa: PLC0415

    configure_logging(config.logging.level, config.logging.format)
    events: list[tuple[str, dict[str, Any]]] = []
    install_event_tap(lambda event, fields: events.append((event, _portable(fields))))
    # The daemon migrated the schema and runs the WAL checkpoints.
    engine, sessions = app.open_database(config, upgrade=False, checkpoint_in_background=True)
    processor = app.build_processor(config, sessions, is_bounded=True)
    conn.send("ready")
    _exit_with_parent()
    try:
        _serve(conn, processor, events)
    finally:
        processor.analyser.close()
        engine.dispose()


def _exit_with_parent() -> None:
    """Exit as soon as the daemon is gone (SIGKILL, OOM).

    An orphan would go on claiming and processing rows beside the restarted daemon's
    child, counting their attempts twice.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(0)  # mid-transaction is fine: an uncommitted transaction is rolled back

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _serve(
    conn: Connection, processor: Processor, events: list[tuple[str, dict[str, Any]]]
) -> None:
    """One pass per request until the daemon closes the pipe."""
    while True:
        try:
            _kind, now, settings = conn.recv()
        except (EOFError, OSError):
            return
        events.clear()
        try:
            if settings is not None:
                processor.settings = settings
            reply: tuple[str, Any, Any] = ("ok", _one_pass(processor, now), list(events))
        except Exception as exc:  # noqa: BLE001 - the daemon's stage logs it and backs off
            reply = ("error", _portable_error(exc), list(events))
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return


def _one_pass(processor: Processor, now: datetime) -> tuple[list[Outcome], float]:
    """What ``mail2case.service.metrics.observed_process_pass`` runs, without the counting."""
    with processor.sessions() as s:
        ids = inbound.pending_ids(s, processor.settings.batch_size)
    started = time.perf_counter()
    done = [o for _, o in processor.handle_many([(i, now) for i in ids]) if o is not None]
    # Messages share transactions: each is charged its share of the pass.
    return done, (time.perf_counter() - started) / max(len(done), 1)


def _portable(fields: dict[str, Any]) -> dict[str, Any]:
    """A log event's fields that cross the pipe: plain values, and a database error."""
    kept: dict[str, Any] = {k: v for k, v in fields.items() if isinstance(v, _FIELD_TYPES)}
    exc = fields.get("exc_info")
    exc = sys.exc_info()[1] if exc is True else exc
    if isinstance(exc, SQLAlchemyError):
        kept["exc_info"] = SQLAlchemyError(str(exc))  # the metrics count its kind only
    return kept


def _portable_error(exc: Exception) -> Exception:
    """``exc`` if it pickles (a database error stays one), else a RuntimeError with its text."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    try:
        exc.add_note(f"in the process child:\n{text}")
        ForkingPickler.loads(ForkingPickler.dumps(exc))
    except Exception:  # noqa: BLE001 - any exception that does not survive the pipe
        return RuntimeError(f"the process pass failed in the child:\n{text}")
    return exc
