"""Wiring: builds engines, stages and their settings from a validated Config."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ingest.agents.reply_address import reply_address
from ingest.analysis.pool import SandboxPool
from ingest.analysis.sandbox import Sandbox
from ingest.priority.model import PriorityModel
from ingest.process import Processor
from ingest.settings import ProcessSettings
from ingest.triage.classify import ClassifySettings
from ingest.triage.reply_matching import CaseToken
from mail2case.config.reader import ConfigError
from mail2case.model_choice import ChosenModel, choose_model
from notifications.render import build_environment
from notifications.sender import DEFAULT_LEASE, Sender, SenderSettings, lease_for
from notifications.transports import MaildirTransport, SmtpTransport
from sla.business_hours import BusinessCalendar, holidays_for
from sla.scheduler import Scheduler, SchedulerSettings
from sla.tracking import SlaContext
from storage import schema
from storage.engine import is_sqlite, make_engine, session_factory

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from mail2case.config.settings import Config
    from notifications.transports import Transport


def team_calendar(config: Config, now: datetime | None = None) -> BusinessCalendar:
    """The business calendar in the team's zone, holidays from the list and the country."""
    bh = config.business_hours
    if not bh.holiday_country:
        return bh.calendar
    year = (now or datetime.now(UTC)).year
    try:
        national = holidays_for(
            bh.holiday_country, range(year - 1, year + 6), bh.holiday_subdivision or None
        )
    except ValueError as exc:
        raise ConfigError([f"business_hours.holiday_country: {exc}"]) from exc
    return dataclasses.replace(bh.calendar, holidays=bh.calendar.holidays | national)


# A claimed message is another instance's for one attempt (the analysis bound) plus the
# transaction after it.
CLAIM_MARGIN = timedelta(seconds=30)


def process_settings(
    config: Config, calendar: BusinessCalendar, model: PriorityModel | None = None
) -> ProcessSettings:
    """The process stage's settings: [processing] with [support], [agents] and the policy.

    ``model``: the priority model that decides (``mail2case.model_choice``); None: the
    shipped one.
    """
    support, processing = config.support, config.processing
    return ProcessSettings(
        support_address=support.address,
        support_name=support.name,
        own_addresses=support.addresses,
        message_id_domain=support.id_domain,
        token=CaseToken(support.ref_prefix),
        first_ref=support.first_ref,
        customers=config.customers,
        policy=config.policy,
        calendar=calendar,
        classify=ClassifySettings(
            own_addresses=support.addresses,
            own_domains_message_id=frozenset({support.id_domain}),
            agent_addresses=config.agent_addresses,
            agent_domains=config.agent_domains,
        ),
        priority_model=model or PriorityModel.shipped(),
        priority_floor=config.priority.floor,
        max_parts=processing.max_parts,
        attachments_dir=processing.attachments_dir,
        auto_reply_opens_case=processing.auto_reply_opens_case,
        batch_size=processing.batch_size,
        agents=config.agents,
        bounce_suppression=config.breaker.bounce_suppression,
        max_attempts=processing.max_attempts,
        claim_period=2 * processing.limits.timeout + CLAIM_MARGIN,
    )


def open_database(
    config: Config, *, upgrade: bool | None = None, checkpoint_in_background: bool = False
) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and sessions; SQLite (or auto_upgrade) brings the schema up to date first.

    ``checkpoint_in_background``: the caller runs SQLite's WAL checkpoints itself (the
    daemon, see ``storage.engine.make_engine``).
    """
    engine = make_engine(config.database.url, checkpoint_in_background=checkpoint_in_background)
    wanted = upgrade if upgrade is not None else (is_sqlite(engine) or config.database.auto_upgrade)
    if wanted:
        schema.upgrade(engine)
    return engine, session_factory(engine)


def build_processor(
    config: Config, sessions: sessionmaker[Session], *, is_bounded: bool = False
) -> Processor:
    """The process stage, ready to run; ``is_bounded``: analysis in a worker (the daemon).

    Raises:
        ConfigError: ``[priority] model`` names a file that is not a usable model.
    """
    chosen = choose_model(config, sessions)
    structlog.get_logger("mail2case.priority").info(
        "priority.model", source=chosen.source, model=chosen.model.name
    )
    settings = process_settings(config, team_calendar(config), chosen.model)
    if not is_bounded:
        return Processor(sessions, settings)
    return Processor(sessions, settings, analyser=bounded_analyser(config, settings))


def current_priority_model(config: Config) -> ChosenModel:
    """The model the daemon would choose, for commands that store nothing.

    The database is read if it is there, never created or upgraded; one that cannot be
    read (absent, or older than the model table) leaves the shipped model deciding.

    Raises:
        ConfigError: ``[priority] model`` names a file that is not a usable model.
    """
    url = make_url(config.database.url)
    if config.priority.model or (
        url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file()
    ):
        return choose_model(config, None)
    engine, sessions = open_database(config, upgrade=False)
    try:
        return choose_model(config, sessions)
    except SQLAlchemyError as exc:
        structlog.get_logger("mail2case.priority").warning(
            "priority.installed_model_unreadable", error=str(exc).splitlines()[0]
        )
        return choose_model(config, None)
    finally:
        engine.dispose()


def bounded_analyser(
    config: Config, settings: ProcessSettings, *, workers: int | None = None
) -> Sandbox | SandboxPool:
    """The analysis in worker processes, within the configured time and memory per message.

    The poison-message bound, and more cores: the processor feeds the workers ahead of
    its case work. ``workers`` (default ``[processing] analysis_workers``): one is a
    ``Sandbox``, more a ``SandboxPool`` of them.
    """
    workers = workers or config.processing.analysis_workers
    limits = config.processing.limits
    if workers == 1:
        return Sandbox(settings.analysis, limits)
    return SandboxPool([Sandbox(settings.analysis, limits) for _ in range(workers)])


MAILDIR_LEASE = timedelta(seconds=15)


def build_sender(config: Config, sessions: sessionmaker[Session]) -> Sender:
    """The outbox sender with the configured transport (maildir by default)."""
    out = config.outgoing
    transport: Transport
    # A maildir write is local and takes well under a second even for 25 MB; a short
    # lease means a crash holds its in-flight acknowledgements back seconds, not minutes.
    lease = MAILDIR_LEASE
    if out.transport == "smtp":
        transport = SmtpTransport(
            out.host,
            out.port,
            starttls=out.starttls,
            ssl=out.ssl,
            username=out.username or None,
            password=out.password or None,
            timeout=out.timeout.total_seconds(),
            ssl_context=None,
        )
        # A row in flight must outlive the slowest submission the timeout allows; a
        # short timeout keeps the default, which a shorter lease would gain nothing on.
        lease = max(DEFAULT_LEASE, lease_for(out.timeout.total_seconds()))
    else:
        transport = MaildirTransport(Path(out.maildir))
    settings = SenderSettings(
        from_name=config.support.name,
        from_addr=config.support.address,
        loop_marker=config.support.address,
        max_attempts=out.max_attempts,
        attachments_dir=config.processing.attachments_dir,
        breaker=config.breaker,
        team_address=config.agents.team_address,
    )
    env = build_environment(Path(config.templates_dir) if config.templates_dir else None)
    # Agents' notices link to the board's case page when it has a public address.
    env.globals["board_url"] = config.web.base_url
    log = structlog.get_logger("mail2case.sender")
    return Sender(sessions, transport, env, settings, log, lease=lease)


def sla_context(config: Config, calendar: BusinessCalendar | None = None) -> SlaContext:
    """What the SLA clocks need: the policy, the business calendar and the reminder share."""
    return SlaContext(
        policy=config.policy,
        calendar=calendar or team_calendar(config),
        reminder_share=config.policy.reminder_share,
        hours_for=config.customers.hours_for,
    )


def scheduler_settings(config: Config) -> SchedulerSettings:
    """The SLA scheduler's settings: who is told, and how the mail looks."""
    support = config.support
    return SchedulerSettings(
        team_address=config.agents.team_address,
        escalation_address=config.sla.escalation_address,
        support_name=support.name,
        support_address=support.address,
        message_id_domain=support.id_domain,
        ref_prefix=support.ref_prefix,
        team_timezone=config.business_hours.calendar.tz,
        remind_in_business_hours_only=config.sla.remind_in_business_hours_only,
        reply_address=functools.partial(_signed_reply_address, config),
    )


def _signed_reply_address(config: Config, case_ref: int) -> str | None:
    secret = config.agents.reply_secret
    return reply_address(config.support.address, case_ref, secret) if secret else None


def build_scheduler(
    config: Config, sessions: sessionmaker[Session], calendar: BusinessCalendar | None = None
) -> Scheduler:
    """The SLA scheduler stage, ready to run."""
    return Scheduler(
        sessions,
        scheduler_settings(config),
        sla_context(config, calendar),
        structlog.get_logger("mail2case.sla"),
    )


def config_warnings(config: Config) -> list[str]:
    """Settings that are valid but leave something quietly undone: said at start-up."""
    warnings = []
    if not config.agents.team_address:
        warnings.append(
            "agents.team_address is empty: notifications, reminders and escalations of cases "
            "without an owner or a customer team_address go nowhere"
        )
    has_agents = bool(config.agent_addresses or config.agent_domains)
    if has_agents and not config.agents.reply_secret:
        warnings.append("agents.reply_secret is empty: agents cannot answer cases by email")
    return warnings
