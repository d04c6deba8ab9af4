"""The daemon as a system service: readiness, watchdog, status line, reload, HTTP servers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import text

from mail2case.service.startup import listen_error
from mail2case.web.probes import Probes, probes_app
from mail2case.web.server import WebServer
from storage import outbox
from storage.statuses import OutboxStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mail2case.config.settings import Config
    from mail2case.service.daemon import Daemon
    from mail2case.service.metrics import Metrics
    from mail2case.service.reload import Reloader
    from mail2case.service.sd_notify import Notifier
    from mail2case.web.probes import Readiness

    # Builds the board's app from the daemon's config and sessions (mail2case.web.site).
    BoardFactory = Callable[[Daemon, Probes], Any]

log = structlog.get_logger("mail2case.service")

STATUS_INTERVAL = 10.0  # STATUS= refresh when systemd asks for no watchdog
PROBE_TIMEOUT = 5.0
# IMAP poller events that say whether its mailbox is reachable; a standby instance
# (another holds the lease) is as ready as a connected one.
IMAP_UP = {"imap.connected": "connected", "imap.lease_held_elsewhere": "standby"}
IMAP_DOWN = ("imap.login_failed", "imap.connection_failed", "imap.pass_failed", "imap.lease_lost")


class SourceStates:
    """Each IMAP mailbox's last known state, read from the pollers' log events."""

    def __init__(self, mailboxes: Iterable[str]) -> None:
        self.states = dict.fromkeys(mailboxes, "connecting")

    def observe(self, event: str, fields: dict[str, Any]) -> None:
        """Update the state of the mailbox named in the event's bound context."""
        name = fields.get("mailbox")
        if name not in self.states:
            return
        if event in IMAP_UP:
            self.states[name] = IMAP_UP[event]
        elif event in IMAP_DOWN:
            self.states[name] = f"down: {fields.get('reason') or fields.get('error') or event}"

    def problems(self) -> dict[str, str]:
        """Mailboxes that are not connected (or standing by), with why."""
        return {
            f"imap:{name}": state
            for name, state in self.states.items()
            if state not in IMAP_UP.values()
        }


class ServiceHooks:
    """Implements the daemon's Lifecycle for systemd, the HTTP probes and the board."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        reloader: Reloader,
        notifier: Notifier,
        sources: SourceStates,
        *,
        board: BoardFactory | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.reloader = reloader
        self.notifier = notifier
        self.sources = sources
        self.board = board
        self.servers: list[WebServer] = []
        self._daemon: Daemon | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._withheld = False

    @property
    def daemon(self) -> Daemon:
        """The daemon being served (set when it has started)."""
        if self._daemon is None:
            raise RuntimeError("the daemon has not started")
        return self._daemon

    async def started(self, daemon: Daemon) -> None:
        """Open the probes and the board, then tell systemd READY=1 (the schema is migrated).

        Raises:
            StartupError: a port cannot be listened on (named by its key).
        """
        self._daemon = daemon
        readiness: Readiness = self.readiness
        probes = Probes(self.metrics.registry, readiness, self.is_alive)
        http, web = self.config.http, self.config.web
        if http.port:
            await self._listen(
                "http", WebServer(probes_app(probes), http.host, http.port, "probes")
            )
        if web.enabled and self.board is not None:
            app = self.board(daemon, probes)
            await self._listen("web", WebServer(app, web.host, web.port, "board"))
        self.notifier.ready(await self.status_line())
        log.info("daemon.ready", notify=self.notifier.is_enabled, watchdog=self._interval())
        if self.notifier.is_enabled:
            self._watch_task = asyncio.create_task(self._watch(), name="watchdog")

    async def _listen(self, section: str, server: WebServer) -> None:
        try:
            await server.start()
        except OSError as exc:
            raise listen_error(section, server.host, server.port, exc) from exc
        self.servers.append(server)

    def stopping(self) -> None:
        """STOPPING=1 as soon as the stop is requested."""
        self.notifier.stopping("draining: finishing in-flight work")

    async def reload(self) -> None:
        """RELOADING=1, re-read the config in a thread, READY=1 whatever the result."""
        self.notifier.reloading()
        ok = await asyncio.to_thread(self.reloader.reload)
        self.metrics.reloads.labels(result="ok" if ok else "failed").inc()
        status = await self.status_line()
        self.notifier.ready(status if ok else f"reload failed, old config kept; {status}")

    async def stopped(self) -> None:
        """Stop the watchdog and close the probes and the board."""
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        for server in self.servers:
            await server.close()
        self.servers = []

    def _interval(self) -> float | None:
        return self.notifier.watchdog_seconds

    async def _watch(self) -> None:
        """Ping while every stage is alive; keep STATUS= fresh. Runs until cancelled."""
        interval = self._interval() or STATUS_INTERVAL
        while True:
            if self._interval() is not None:
                self._ping_if_alive()
            self.notifier.status(await self.status_line())
            await asyncio.sleep(interval)

    def _ping_if_alive(self) -> None:
        stuck = self.stuck()
        if not stuck:
            self.notifier.watchdog()
        elif not self._withheld:
            # Said once: systemd will restart us when WatchdogSec passes without a ping.
            log.error("watchdog.withheld", stuck=stuck)
        self._withheld = bool(stuck)

    def stuck(self) -> dict[str, str]:
        """Stages whose pass runs too long, and loops that ended before a stop."""
        now, limit = time.monotonic(), self.config.service.stuck_pass.total_seconds()
        found = {
            s.name: f"pass running for {now - (s.busy_since or now):.0f}s"
            for s in self.daemon.stages
            if s.is_stuck(now, limit)
        }
        if not self.daemon.stop.is_set():
            found |= {t.get_name(): "loop ended" for t in self.daemon.tasks if t.done()}
        return found

    def is_alive(self) -> bool:
        """Liveness: the loop answers (this runs on it) and no stage is stuck."""
        return not self.stuck()

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when the database answers and every source listens or is connected."""
        problems = dict(self.sources.problems())
        if self.daemon.stop.is_set():
            problems["daemon"] = "stopping"
        server = self.daemon.smtp_server
        if self.config.smtp.enabled and (server is None or not server.is_serving()):
            problems["smtp"] = "not listening"
        database = await self._database_problem()
        if database:
            problems["database"] = database
        problems |= {f"stage:{k}": v for k, v in self.stuck().items()}
        reason = "; ".join(f"{k}: {v}" for k, v in problems.items())
        return not problems, {"reason": reason, "problems": problems}

    async def _database_problem(self) -> str:
        def ping() -> None:
            with self.daemon.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(asyncio.to_thread(ping), PROBE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its name
            self.metrics.db_errors.labels(event="readyz").inc()
            return f"{type(exc).__name__}: {str(exc)[:200]}"
        return ""

    async def status_line(self) -> str:
        """One line for ``systemctl status``: received, processed, sent, queued."""
        handled = {s.name: s.handled for s in self.daemon.stages} if self._daemon else {}
        queued = await self._queued()
        return (
            f"received {self.metrics.total_received()}, processed {handled.get('process', 0)}, "
            f"sent {handled.get('send', 0)}, queued {queued}"
        )

    async def _queued(self) -> str:
        def count() -> int:
            with self.daemon.sessions() as s:
                return outbox.counts(s).get(OutboxStatus.QUEUED, 0)

        if self._daemon is None:
            return "?"
        try:
            return str(await asyncio.wait_for(asyncio.to_thread(count), PROBE_TIMEOUT))
        except Exception:  # noqa: BLE001 - a status line must not fail; "?" says we don't know
            return "?"
