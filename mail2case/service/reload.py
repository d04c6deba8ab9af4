"""SIGHUP: re-read the config file and swap in what can change without dropping connections."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import structlog

from mail2case import app
from mail2case.config.effective import changed_keys
from mail2case.config.reader import ConfigError
from mail2case.config.settings import Config, load_config
from mail2case.model_choice import choose_model
from notifications.render import build_environment

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from ingest.process import Processor
    from mail2case.service.daemon import Stage

log = structlog.get_logger("mail2case.service.reload")

# Sections applied on reload; every other difference is reported as needing a restart
# (listeners, the database, transports and stage intervals are built once at start).
LIVE_SECTIONS = (
    "templates_dir",
    "customers",
    "policy",
    "sla",
    "business_hours",
    "agents",
    "priority",
)
# [agents] addresses and domains: Config keeps who is an agent beside the agents' settings.
LIVE_FIELDS = (*LIVE_SECTIONS, "agent_addresses", "agent_domains")
FIXED_FIELDS = frozenset({"sla.poll_interval_seconds"})


@dataclass(frozen=True)
class Change:
    """What a new config changes: keys applied now, keys that wait for a restart."""

    applied: tuple[str, ...]
    needs_restart: tuple[str, ...]


def differences(old: Config, new: Config) -> list[str]:
    """Dotted keys whose values differ (one level into each section), as check-config names them."""
    return changed_keys(old, new)


def classify_change(old: Config, new: Config) -> Change:
    """Split the differences into what reload applies and what needs a restart."""
    applied: list[str] = []
    fixed: list[str] = []
    for key in differences(old, new):
        section = key.partition(".")[0]
        live = section in LIVE_SECTIONS and key not in FIXED_FIELDS
        (applied if live else fixed).append(key)
    return Change(tuple(applied), tuple(fixed))


def effective(old: Config, new: Config) -> Config:
    """``old`` with the live sections of ``new``: what the daemon runs with after reload."""
    merged: dict[str, Any] = {name: getattr(new, name) for name in LIVE_FIELDS}
    merged["sla"] = dataclasses.replace(new.sla, poll_interval=old.sla.poll_interval)
    return dataclasses.replace(old, **merged)


class Reloader:
    """Holds the running config; ``reload()`` validates a new one and swaps it in."""

    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
        processor: Processor,
        stages: dict[str, Stage],
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.processor = processor
        self.stages = stages

    @property
    def path(self) -> Path | None:
        """The file the running config came from; None for built-in defaults."""
        return None if self.config.source == Config().source else Path(self.config.source)

    def reload(self) -> bool:
        """Re-read and apply; on any problem log ``config.reload_failed`` and keep the old."""
        if self.path is None:
            log.warning("config.reload_failed", problems=["no config file: started on defaults"])
            return False
        try:
            new = load_config(self.path)
            running = effective(self.config, new)
            self._apply(running)
        except ConfigError as exc:
            problems = exc.problems
        else:
            problems = []
        if problems:
            # The problems are the message; a traceback would only bury them.
            log.error("config.reload_failed", path=str(self.path), problems=problems)
            return False
        change = classify_change(self.config, new)
        self.config = running
        log.info(
            "config.reloaded",
            path=str(self.path),
            applied=list(change.applied),
            needs_restart=list(change.needs_restart),
        )
        return True

    def _apply(self, config: Config) -> None:
        """Build every new part first (any may raise), then swap them in."""
        check_templates(config)
        calendar = app.team_calendar(config)
        # The model is chosen again: `priority train` may have installed a new one.
        chosen = choose_model(config, self.sessions)
        settings = app.process_settings(config, calendar, chosen.model)
        sender = app.build_sender(config, self.sessions)
        scheduler = app.build_scheduler(config, self.sessions, calendar)
        # ProcessSettings is frozen: the processor gets a new value, read on its next message.
        self.processor.settings = settings
        if "send" in self.stages:
            self.stages["send"].run_once = sender.run_once
        if "schedule" in self.stages:
            self.stages["schedule"].run_once = scheduler.run_once
        log.info("priority.model", source=chosen.source, model=chosen.model.name)


def check_templates(config: Config) -> None:
    """Compile every override template now: a typo must fail the reload, not the next mail.

    Raises:
        ConfigError: naming ``templates.directory`` and the template at fault.
    """
    if not config.templates_dir:
        return
    directory = Path(config.templates_dir)
    if not directory.is_dir():
        raise ConfigError([f"templates.directory: no such directory (got {str(directory)!r})"])
    env = build_environment(directory)
    for path in sorted(directory.glob("*.j2")):
        try:
            env.get_template(path.name)
        except jinja2.TemplateError as exc:
            raise ConfigError([f"templates.directory: {path.name}: {exc}"]) from exc
