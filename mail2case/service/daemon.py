"""The daemon: runs the sources and stages in one asyncio loop until told to stop.

``Stage`` is the loop around one stage's ``run_once``; ``Daemon`` starts the stages, the
SMTP listener and the other services, and stops them in order. ``mail2case.service.build``
assembles one from the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from ingest.sources.group_commit import Delivery, GroupCommit
from ingest.sources.smtp import SupportHandler, start_server
from mail2case.service.startup import StartupError, listen_error
from storage import inbound
from storage.write_queue import urgent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from mail2case.config.settings import Config

log = structlog.get_logger("mail2case.service.daemon")
Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
# Waits until ``stop`` or ``wake`` is set, or the seconds have passed.
Wait = Callable[[asyncio.Event, asyncio.Event, float], Awaitable[None]]
# The longest a stage waits after failing passes (it doubles from the stage's interval).
MAX_BACKOFF_SECONDS = 60.0


async def wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Return once ``stop`` or ``wake`` is set, or after ``seconds``."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


@dataclass
class Stage:
    """A loop around ``run_once(now) -> int``; sleeps ``interval`` when idle or until woken."""

    name: str
    run_once: Callable[[datetime], int]
    interval: float
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    then: list[asyncio.Event] = field(default_factory=list)
    handled: int = 0
    errors: int = 0
    last_pass: float = 0.0
    # Monotonic start of the pass running now; None while idle (the watchdog reads it).
    busy_since: float | None = None
    wait: Wait = wait_any  # between passes (tests pass one that does not sleep)

    def is_stuck(self, now: float, limit: float) -> bool:
        """Whether the pass in progress has run longer than ``limit`` seconds."""
        return self.busy_since is not None and now - self.busy_since > limit

    async def pass_once(self) -> int:
        """One ``run_once`` in a worker thread, marked busy while it runs."""
        self.busy_since = time.monotonic()
        try:
            return await asyncio.to_thread(self.run_once, datetime.now(UTC))
        finally:
            self.busy_since = None

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set; one failing pass is logged and retried, never fatal.

        After a pass that handled something the next one starts at once; after an idle
        pass the stage waits ``interval`` (or until woken). After a failing pass it waits
        twice as long as after the failure before, starting from twice ``interval``, up
        to :data:`MAX_BACKOFF_SECONDS`; a pass that succeeds starts the doubling afresh.
        """
        backoff = self.interval
        while not stop.is_set():
            self.wake.clear()
            try:
                n = await self.pass_once()
            except Exception:
                self.errors += 1
                log.exception("stage.pass_failed", stage=self.name)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                await self.wait(stop, self.wake, backoff)
                continue
            backoff = self.interval
            self.handled += n
            self.last_pass = time.monotonic()
            for event in self.then:
                if n:
                    event.set()
            if n == 0:
                await self.wait(stop, self.wake, self.interval)


class Lifecycle(Protocol):
    """What a service manager integration hooks into (mail2case.service.hooks)."""

    async def started(self, daemon: Daemon) -> None:
        """Listeners are up and stages running: start extras, report ready."""

    def stopping(self) -> None:
        """A stop was requested."""

    async def reload(self) -> None:
        """SIGHUP: reload what can change at runtime."""

    async def stopped(self) -> None:
        """Stages have drained: close extras."""


@dataclass
class Daemon:
    """Everything ``mail2case run`` starts, and the order it stops them in."""

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    stages: list[Stage]
    # Long-running services that are not run_once loops (IMAP IDLE): started with the
    # stop event, awaited on shutdown like the stages.
    services: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = field(
        default_factory=list
    )
    shutdown_timeout: float = 30.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0
    lifecycle: Lifecycle | None = None
    # Stages run again after the loops stop, until idle or out of grace: acks go out.
    flush_on_stop: tuple[str, ...] = ("process", "send")
    smtp_server: asyncio.Server | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _reloads: set[asyncio.Task[None]] = field(default_factory=set)

    def commit_raw(self, raw: bytes, mail_from: str, rcpt_to: list[str]) -> int:
        """Commit one SMTP delivery (runs in a worker thread); returns the inbound id."""
        return self.commit_many([Delivery(raw, mail_from, rcpt_to)])[0]

    def commit_many(self, deliveries: Sequence[Delivery]) -> list[int]:
        """Commit SMTP deliveries in one transaction (one fsync); returns their inbound ids."""
        now = datetime.now(UTC)
        # Ahead of the stages' transactions in this process's write queue: a 250 waits.
        with urgent(), self.sessions.begin() as s:
            ids = inbound.add_mail(
                s,
                source="smtp",
                now=now,
                mails=[inbound.NewMail(d.raw, d.mail_from, d.rcpt_to) for d in deliveries],
            )
        self.received += len(ids)
        return ids

    def wake(self, name: str) -> Callable[[], None]:
        """A callback that wakes stage ``name`` (the processor after a receive)."""
        stage = next(s for s in self.stages if s.name == name)
        return stage.wake.set

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; drain in order; return the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        if self.lifecycle is not None:
            loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        try:
            server = self.smtp_server = await self._start_smtp()
        except OSError as exc:
            await self._shutdown(None, [])
            smtp = self.config.smtp
            raise listen_error("smtp", smtp.host, smtp.port, exc) from exc
        tasks = [asyncio.create_task(s.run(self.stop), name=s.name) for s in self.stages]
        tasks += [asyncio.create_task(service(self.stop)) for service in self.services]
        self.tasks = tasks
        log.info(
            "daemon.started",
            stages=[s.name for s in self.stages],
            database=self.engine.dialect.name,
        )
        if self.lifecycle is not None:
            try:
                await self.lifecycle.started(self)
            except StartupError:  # the probes' or the board's port
                self.stop.set()
                await self._shutdown(server, tasks)
                raise
        await self.stop.wait()
        await self._shutdown(server, tasks)
        return 0

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("daemon.stopping", signal=sig.name)
        self.stop.set()
        if self.lifecycle is not None:
            self.lifecycle.stopping()

    def _request_reload(self) -> None:
        if self.lifecycle is not None and not self.stop.is_set():
            task = asyncio.get_running_loop().create_task(self.lifecycle.reload())
            self._reloads.add(task)  # a reference, so the task is not collected mid-way
            task.add_done_callback(self._reloads.discard)

    async def _start_smtp(self) -> asyncio.Server | None:
        smtp = self.config.smtp
        if not smtp.enabled:
            return None
        handler = SupportHandler(
            self.config.support.addresses,
            GroupCommit(self.commit_many).commit,
            self.wake("process"),
            smtp.max_recipients,
        )
        return await start_server(smtp, handler)

    async def _shutdown(
        self, server: asyncio.Server | None, tasks: list[asyncio.Task[None]]
    ) -> None:
        # Order: stop accepting, let in-flight work finish within the grace period, then cancel.
        deadline = time.monotonic() + self.shutdown_timeout
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=self.shutdown_timeout / 2)
        pending: set[asyncio.Task[None]] = set()
        if tasks:  # none when the start failed before the stages ran
            _, pending = await asyncio.wait(tasks, timeout=self.shutdown_timeout)
        for task in pending:
            task.cancel()
        if not pending:
            await self._flush(deadline)
        if self.lifecycle is not None:
            await self.lifecycle.stopped()
        self.engine.dispose()
        log.info(
            "daemon.stopped",
            received=self.received,
            **{f"{s.name}_handled": s.handled for s in self.stages},
            cancelled=len(pending),
        )

    async def _flush(self, deadline: float) -> None:
        """Run the flush stages until idle or the grace period is spent; failures end it."""
        for stage in (s for s in self.stages if s.name in self.flush_on_stop):
            while time.monotonic() < deadline:
                try:
                    n = await asyncio.wait_for(stage.pass_once(), deadline - time.monotonic())
                except Exception:  # shutting down: logged, the work waits for the next start
                    log.warning("daemon.flush_failed", stage=stage.name, exc_info=True)
                    return
                stage.handled += n
                if n == 0:
                    break
