"""Builds the daemon's stages from the configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mail2case import app
from mail2case.imap_wiring import build_imap_services
from mail2case.supervisor import Daemon, Stage

if TYPE_CHECKING:
    from mail2case.config import Config


def build_daemon(config: Config) -> Daemon:
    """Open the database (migrating SQLite) and assemble the stages."""
    engine, sessions = app.open_database(config)
    processor = app.build_processor(config, sessions)
    sender = app.build_sender(config, sessions)
    send = Stage("send", sender.run_once, config.outgoing.poll_interval_seconds)
    scheduler = app.build_scheduler(config, sessions)
    schedule = Stage(
        "schedule", scheduler.run_once, config.sla.poll_interval_seconds, then=[send.wake]
    )
    # A processed message may start or move a clock that is already due (a late import).
    process = Stage(
        "process",
        processor.run_once,
        config.processing.poll_interval_seconds,
        then=[send.wake, schedule.wake],
    )
    stages = [process, send, schedule]
    services = build_imap_services(config, sessions, process.wake.set)
    return Daemon(config=config, engine=engine, sessions=sessions, stages=stages, services=services)
