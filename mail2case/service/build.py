"""Builds the daemon from the configuration: its stages, services and service hooks."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from mail2case import app
from mail2case.service.daemon import Daemon, Lifecycle, Stage
from mail2case.service.hooks import ServiceHooks, SourceStates
from mail2case.service.imap import build_imap_services
from mail2case.service.metrics import (
    DatabaseCollector,
    Metrics,
    install_event_tap,
    observed_process_pass,
)
from mail2case.service.process_child import ProcessChild, child_process_pass
from mail2case.service.purge import purge_pass
from mail2case.service.reload import Reloader
from mail2case.service.sd_notify import Notifier
from mail2case.web.site import board_app, make_signin
from storage.write_queue import checkpoint, wal_state

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker
    from starlette.applications import Starlette

    from ingest.process import Processor
    from mail2case.config.settings import Config
    from mail2case.service.hooks import BoardFactory
    from mail2case.web.probes import Probes

PURGE_INTERVAL_SECONDS = 24 * 3600.0
CHECKPOINT_SECONDS = 1.0
log = structlog.get_logger("mail2case.daemon")


def build_daemon(config: Config) -> Daemon:
    """Open the database (migrating SQLite) and assemble the stages."""
    for warning in app.config_warnings(config):
        log.warning("config.warning", detail=warning)
    engine, sessions = app.open_database(config, checkpoint_in_background=True)
    child = ProcessChild(config) if config.processing.separate_process else None
    # With a child, this processor never runs: it holds the settings SIGHUP replaces.
    processor = app.build_processor(config, sessions, is_bounded=child is None)
    sender = app.build_sender(config, sessions)
    send = Stage("send", sender.run_once, config.outgoing.poll_interval.total_seconds())
    scheduler = app.build_scheduler(config, sessions)
    schedule = Stage(
        "schedule", scheduler.run_once, config.sla.poll_interval.total_seconds(), then=[send.wake]
    )
    # A processed message may start or move a clock that is already due (a late import).
    metrics = Metrics()
    process = Stage(
        "process",
        observed_process_pass(processor, sessions, metrics)
        if child is None
        else child_process_pass(child, processor, metrics),
        config.processing.poll_interval.total_seconds(),
        then=[send.wake, schedule.wake],
    )
    # SQLite: the WAL is copied into the database here, off every commit's path.
    checkpoints = Stage("checkpoint", _Checkpoints(engine), CHECKPOINT_SECONDS)
    stages = [process, send, schedule, checkpoints]
    if config.retention.raw_days > 0:
        stages.append(Stage("purge", _purge_run(config, sessions), PURGE_INTERVAL_SECONDS))
    services = build_imap_services(config, sessions, process.wake.set)
    daemon = Daemon(
        config=config, engine=engine, sessions=sessions, stages=stages, services=services
    )
    daemon.shutdown_timeout = config.service.shutdown_grace.total_seconds()
    hooks = _service_hooks(config, sessions, processor, stages, metrics)
    daemon.lifecycle = hooks if child is None else _ChildClosingHooks(hooks, child)
    return daemon


class _ChildClosingHooks:
    """The service hooks; once the stages have drained, the process child is ended too."""

    def __init__(self, hooks: Lifecycle, child: ProcessChild) -> None:
        self.hooks = hooks
        self.child = child

    async def started(self, daemon: Daemon) -> None:
        """As the hooks do."""
        await self.hooks.started(daemon)

    def stopping(self) -> None:
        """As the hooks do."""
        self.hooks.stopping()

    async def reload(self) -> None:
        """As the hooks do (the new settings reach the child with its next pass)."""
        await self.hooks.reload()

    async def stopped(self) -> None:
        """End the child (after its pass in progress, within a bound), then the hooks."""
        await asyncio.to_thread(self.child.close)
        await self.hooks.stopped()


class _Checkpoints:
    """The checkpoint stage: PASSIVE every pass; TRUNCATE once the database is idle.

    Idle means nothing was written to the WAL since the previous pass (a second ago):
    its size and modification time are as they were, so no writer is held up while the
    file is cut back to zero.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.last_seen: tuple[int, int] | None = None

    def __call__(self, _now: datetime) -> int:
        seen = wal_state(self.engine)
        idle = seen is not None and seen[0] > 0 and seen == self.last_seen
        checkpoint(self.engine, truncate=idle)
        self.last_seen = wal_state(self.engine)
        return 0  # nothing for the stage to count: it waits its interval either way


def _purge_run(config: Config, sessions: sessionmaker[Session]) -> Callable[[datetime], int]:
    """The retention stage: raw mail of cases closed ``raw_days`` ago is purged daily."""
    return purge_pass(sessions, config.retention.raw_days, config.processing.attachments_dir)


def _service_hooks(
    config: Config,
    sessions: sessionmaker[Session],
    processor: Processor,
    stages: list[Stage],
    metrics: Metrics,
) -> ServiceHooks:
    """The service side: sd_notify, watchdog, SIGHUP reload, HTTP probes (fed by log events)."""
    metrics.registry.register(DatabaseCollector(sessions, metrics))
    sources = SourceStates(box.name for box in config.imap)

    def tap(event: str, fields: dict[str, Any]) -> None:
        metrics.observe_event(event, fields)
        sources.observe(event, fields)

    install_event_tap(tap)
    reloader = Reloader(config, sessions, processor, {s.name: s for s in stages})
    board = _board_factory(config, sessions, processor) if config.web.enabled else None
    return ServiceHooks(
        config, metrics, reloader, Notifier.from_environment(), sources, board=board
    )


def _board_factory(
    config: Config, sessions: sessionmaker[Session], processor: Processor
) -> BoardFactory:
    """Builds the queue board once the daemon has started (it serves the daemon's probes).

    Who is an agent is read from the processor's settings, which SIGHUP replaces: an
    agent removed from the config loses the board at the reload, not at the next restart.

    Raises:
        ConfigError: ``[web] session_secret_file`` cannot be read or made (before any start).
    """
    signin = make_signin(config, sessions, lambda: processor.settings.classify)

    def build(daemon: Daemon, probes: Probes) -> Starlette:
        del daemon  # the board reads the same config and database the daemon was built on
        return board_app(config, sessions, signin, probes)

    return build
