"""Configuration: TOML (or built-in defaults) validated into immutable settings."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.agents.outbox import AgentMailSettings
from ingest.analysis.sandbox import Limits
from ingest.priority.decision import DEFAULT_FLOOR, Floor
from ingest.settings import ProcessSettings
from ingest.sources.smtp_settings import SmtpSettings
from mail2case.config.imap import read_imap_settings
from mail2case.config.reader import ConfigError, Section, field_default
from mail2case.config.service_levels import (
    BusinessHoursSettings,
    default_customers,
    read_business_hours,
    read_customers,
    read_policy,
)
from mail2case.config.web import WebSettings, read_web_settings
from notifications.breaker import BreakerSettings
from notifications.sender import SenderSettings
from sla.policy import SlaPolicy, default_policy
from sla.scheduler import SchedulerSettings

if TYPE_CHECKING:
    from ingest.sources.imap_settings import ImapSettings
    from ingest.triage.customers import CustomerDirectory

ENV_VAR = "MAIL2CASE_CONFIG"


@dataclass(frozen=True)
class DatabaseSettings:
    """Where cases live; SQLite by default."""

    url: str = "sqlite:///mail2case.db"
    auto_upgrade: bool = True


@dataclass(frozen=True)
class SupportSettings:
    """The support address customers write to, and how cases are referenced."""

    address: str = "support@localhost"
    name: str = "Support"
    aliases: tuple[str, ...] = ()
    ref_prefix: str = "#"
    first_ref: int = 1000
    message_id_domain: str = ""

    @property
    def addresses(self) -> frozenset[str]:
        """Every address that is ours, lower-cased."""
        return frozenset(a.lower() for a in (self.address, *self.aliases))

    @property
    def id_domain(self) -> str:
        """The domain of the Message-IDs we generate."""
        return self.message_id_domain or self.address.rpartition("@")[2] or "localhost"


@dataclass(frozen=True)
class OutgoingSettings:
    """``[outgoing]``: the transport (a local maildir, or an SMTP relay) and its pace.

    The sender's own settings (``notifications.sender.SenderSettings``) combine
    ``max_attempts`` with [support] and the circuit breaker, in ``mail2case.app``.
    """

    transport: str = "maildir"
    maildir: str = "outgoing"
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: timedelta = timedelta(seconds=30)
    max_attempts: int = field(default=field_default(SenderSettings, "max_attempts"))
    poll_interval: timedelta = timedelta(seconds=2)


@dataclass(frozen=True)
class ProcessingSettings:
    """``[processing]``: the process stage's pace and bounds.

    ``ingest.settings.ProcessSettings`` combines these with [support], the customers,
    the plans and [agents] (``mail2case.app.process_settings``); the defaults are its own.
    """

    poll_interval: timedelta = timedelta(seconds=1)
    batch_size: int = field(default=field_default(ProcessSettings, "batch_size"))
    max_parts: int = field(default=field_default(ProcessSettings, "max_parts"))
    attachments_dir: Path | None = None  # None: attachment contents live in the database
    auto_reply_opens_case: bool = field(
        default=field_default(ProcessSettings, "auto_reply_opens_case")
    )
    # The poison-message bound (ingest.analysis.sandbox): time and memory per message,
    # and attempts before quarantine.
    limits: Limits = field(default_factory=Limits)
    max_attempts: int = field(default=field_default(ProcessSettings, "max_attempts"))
    # Analysis worker processes, each within ``limits`` (ingest.analysis.pool).
    analysis_workers: int = 1
    # The stage runs in a child process of its own (its own GIL; mail2case.service.process_child).
    separate_process: bool = True


@dataclass(frozen=True)
class SlaSettings:
    """``[sla]``: when reminders and escalations go out, and to whom.

    ``reminder_share`` is read into the policy (``Config.policy.reminder_share``); the
    scheduler's settings combine these with [support] and [agents] (``mail2case.app``).
    """

    escalation_address: str = ""
    remind_in_business_hours_only: bool = field(
        default=field_default(SchedulerSettings, "remind_in_business_hours_only")
    )
    poll_interval: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class LoggingSettings:
    """Log level and format (auto: console on a terminal, JSON otherwise)."""

    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class ServiceSettings:
    """How the daemon behaves as a system service: draining on stop, the watchdog."""

    shutdown_grace: timedelta = timedelta(seconds=30)
    # A stage pass running longer than this counts as stuck: watchdog pings stop.
    stuck_pass: timedelta = timedelta(seconds=300)


@dataclass(frozen=True)
class HttpSettings:
    """The health and metrics endpoint; port 0 leaves it off."""

    host: str = "127.0.0.1"
    port: int = 0


@dataclass(frozen=True)
class PrioritySettings:
    """``[priority]``: which model decides, and what the rules' High does to its Low."""

    # A model file (JSON, as `priority train` or scripts/build-priority-model.sh write).
    # Empty: the model `priority train` installed in the database, else the shipped one.
    model: str = ""
    floor: Floor = DEFAULT_FLOOR


@dataclass(frozen=True)
class RetentionSettings:
    """How long raw mail and attachments of closed cases are kept; 0 days: for ever."""

    raw_days: int = 0


@dataclass(frozen=True)
class Config:
    """Every setting, validated. Components receive only their own part."""

    source: str = "built-in defaults"
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    support: SupportSettings = field(default_factory=SupportSettings)
    outgoing: OutgoingSettings = field(default_factory=OutgoingSettings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    templates_dir: str = ""
    business_hours: BusinessHoursSettings = field(default_factory=BusinessHoursSettings)
    policy: SlaPolicy = field(default_factory=default_policy)
    sla: SlaSettings = field(default_factory=SlaSettings)
    agents: AgentMailSettings = field(default_factory=AgentMailSettings)
    # Who is an agent ([agents] addresses and domains): triage's to know, in ClassifySettings.
    agent_addresses: frozenset[str] = frozenset()
    agent_domains: frozenset[str] = frozenset()
    customers: CustomerDirectory = field(default_factory=default_customers)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    imap: tuple[ImapSettings, ...] = ()
    service: ServiceSettings = field(default_factory=ServiceSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    priority: PrioritySettings = field(default_factory=PrioritySettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    web: WebSettings = field(default_factory=WebSettings)


def config_path(cli_path: str | None) -> Path | None:
    """``--config`` first, then ``$MAIL2CASE_CONFIG``, else None (built-in defaults)."""
    chosen = cli_path or os.environ.get(ENV_VAR)
    return Path(chosen) if chosen else None


def load_config(path: Path | None) -> Config:
    """Read and validate the configuration.

    Raises:
        ConfigError: listing every problem as ``dotted.key: problem (got X)``.
    """
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    return config_from_mapping(data, source=str(path))


def config_from_mapping(data: dict[str, Any], *, source: str = "mapping") -> Config:
    """Validate parsed TOML into a Config, gathering all problems."""
    problems: list[str] = []
    root = Section(data, "", problems)
    policy = read_policy(root.table("plans"), root.table("sla"))
    database = _database(root.table("database"))
    smtp = _smtp(root.table("smtp"))
    support = _support(root.table("support"))
    outgoing = _outgoing(root.table("outgoing"))
    processing = _processing(root.table("processing"))
    templates_dir = root.table("templates").str("directory")
    business_hours = read_business_hours(root.table("business_hours"))
    sla = _sla(root.table("sla"))
    agents, agent_addresses, agent_domains = _agents(root.table("agents"))
    config = Config(
        source=source,
        database=database,
        smtp=smtp,
        support=support,
        outgoing=outgoing,
        processing=processing,
        templates_dir=templates_dir,
        business_hours=business_hours,
        policy=policy,
        sla=sla,
        agents=agents,
        agent_addresses=agent_addresses,
        agent_domains=agent_domains,
        customers=read_customers(root, frozenset(policy.plans)),
        logging=_logging(root.table("logging")),
        imap=read_imap_settings(root),
        service=_service(root.table("service")),
        http=_http(root.table("http")),
        retention=RetentionSettings(raw_days=root.table("retention").int("raw_days", 0, 0, 36500)),
        breaker=_breaker(root.table("circuit_breaker")),
        priority=_priority(root.table("priority")),
        web=read_web_settings(root.table("web")),
    )
    root.finish()
    if problems:
        raise ConfigError(sorted(set(problems), key=problems.index))
    return config


def _database(s: Section) -> DatabaseSettings:
    url = s.str("url", DatabaseSettings.url)
    if not url.startswith(("sqlite", "postgresql")):
        s.problem("url", "must be a sqlite:/// or postgresql+psycopg:// URL", url)
    return DatabaseSettings(url=url, auto_upgrade=s.bool("auto_upgrade", default=True))


def _smtp(s: Section) -> SmtpSettings:
    d = SmtpSettings()
    return SmtpSettings(
        enabled=s.bool("enabled", default=d.enabled),
        host=s.str("host", d.host),
        port=s.int("port", d.port, 1, 65535),
        max_message_size=s.int("max_message_size", d.max_message_size, 1024, 2**31),
        max_recipients=s.int("max_recipients", d.max_recipients, 1, 10000),
        tls_cert_file=s.str("tls_cert_file"),
        tls_key_file=s.str("tls_key_file"),
        require_starttls=s.bool("require_starttls", default=False),
        hostname=s.str("hostname", d.hostname),
        data_timeout_seconds=s.number("data_timeout_seconds", d.data_timeout_seconds, 0.1),
        max_connections=s.int("max_connections", d.max_connections, 1, 100000),
        max_connections_per_client=s.int(
            "max_connections_per_client", d.max_connections_per_client, 1, 100000
        ),
        max_session_seconds=s.number("max_session_seconds", d.max_session_seconds, 1),
        max_commands=s.int("max_commands", d.max_commands, 10, 10**7),
    )


def _support(s: Section) -> SupportSettings:
    d = SupportSettings()
    address = s.str("address", d.address)
    if "@" not in address or any(c in address for c in " \r\n<>"):
        s.problem("address", "must be a plain email address like support@example.com", address)
    return SupportSettings(
        address=address,
        name=s.str("name", d.name),
        aliases=s.str_list("aliases"),
        ref_prefix=s.str("ref_prefix", d.ref_prefix),
        first_ref=s.int("first_ref", d.first_ref, 1, 10**12),
        message_id_domain=s.str("message_id_domain"),
    )


def _outgoing(s: Section) -> OutgoingSettings:
    d = OutgoingSettings()
    return OutgoingSettings(
        transport=s.choice("transport", d.transport, ("maildir", "smtp")),
        maildir=s.str("maildir", d.maildir),
        host=s.str("host", d.host),
        port=s.int("port", d.port, 1, 65535),
        starttls=s.bool("starttls", default=d.starttls),
        ssl=s.bool("ssl", default=d.ssl),
        username=s.str("username", d.username),
        password=s.secret("password"),
        timeout=s.seconds("timeout_seconds", d.timeout, 1),
        max_attempts=s.int("max_attempts", d.max_attempts, 1, 1000),
        poll_interval=s.seconds("poll_interval_seconds", d.poll_interval, 0.05),
    )


def _processing(s: Section) -> ProcessingSettings:
    d = ProcessingSettings()
    poll_interval = s.seconds("poll_interval_seconds", d.poll_interval, 0.05)
    batch_size = s.int("batch_size", d.batch_size, 1, 10000)
    max_parts = s.int("max_parts", d.max_parts, 1, 100000)
    attachments_dir = s.str("attachments_dir")
    auto_reply_opens_case = s.bool("auto_reply_opens_case", default=d.auto_reply_opens_case)
    limits = Limits(
        timeout=s.seconds("message_timeout_seconds", d.limits.timeout, 0.05, 3600),
        memory_mb=s.int("message_memory_mb", d.limits.memory_mb, 16, 1024 * 1024),
    )
    return ProcessingSettings(
        poll_interval=poll_interval,
        batch_size=batch_size,
        max_parts=max_parts,
        attachments_dir=Path(attachments_dir) if attachments_dir else None,
        auto_reply_opens_case=auto_reply_opens_case,
        limits=limits,
        max_attempts=s.int("max_attempts", d.max_attempts, 1, 100),
        analysis_workers=s.int("analysis_workers", d.analysis_workers, 1, 64),
        separate_process=s.bool("separate_process", default=d.separate_process),
    )


def _sla(s: Section) -> SlaSettings:
    d = SlaSettings()
    return SlaSettings(
        escalation_address=s.str("escalation_address", d.escalation_address),
        remind_in_business_hours_only=s.bool(
            "remind_in_business_hours_only", default=d.remind_in_business_hours_only
        ),
        poll_interval=s.seconds("poll_interval_seconds", d.poll_interval, 0.05),
    )


def _agents(s: Section) -> tuple[AgentMailSettings, frozenset[str], frozenset[str]]:
    """The agents' mail settings, then who is an agent: their addresses and domains."""
    d = AgentMailSettings()
    require = s.bool("require_authentication", default=d.require_authentication)
    trusted = frozenset(i.lower() for i in s.str_list("trusted_authserv_ids"))
    if require and not trusted:
        s.problem("trusted_authserv_ids", "required when require_authentication is true")
    team_address = s.str("team_address", d.team_address)
    addresses = frozenset(a.lower() for a in s.str_list("addresses"))
    domains = frozenset(x.lower() for x in s.str_list("domains"))
    mail = AgentMailSettings(
        team_address=team_address,
        reply_secret=s.secret("reply_secret"),
        previous_reply_secrets=tuple(s.str_list("previous_reply_secrets")),
        require_authentication=require,
        trusted_authserv_ids=trusted,
        max_relays_per_hour=s.int("max_relays_per_hour", d.max_relays_per_hour, 1, 10000),
        max_error_mails_per_hour=s.int(
            "max_error_mails_per_hour", d.max_error_mails_per_hour, 0, 10000
        ),
        max_relays_per_agent_per_hour=s.int(
            "max_relays_per_agent_per_hour", d.max_relays_per_agent_per_hour, 1, 100000
        ),
        max_relay_recipients=s.int("max_relay_recipients", d.max_relay_recipients, 1, 1000),
        names=_agent_names(s),
    )
    return mail, addresses, domains


def _agent_names(s: Section) -> tuple[tuple[str, str], ...]:
    """``[agents] names``: a table of address = "Display Name"."""
    value = s.raw("names", {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and "@" in k and isinstance(v, str) for k, v in value.items()
    ):
        s.problem("names", 'must be a table of "address" = "Name"', value)
        return ()
    return tuple(sorted((k.strip().lower(), " ".join(v.split())) for k, v in value.items()))


def _breaker(s: Section) -> BreakerSettings:
    d = BreakerSettings()
    return BreakerSettings(
        per_recipient=s.int("per_recipient", d.per_recipient, 1, 100000),
        per_case=s.int("per_case", d.per_case, 1, 100000),
        window=timedelta(
            seconds=s.int("window_seconds", int(d.window.total_seconds()), 60, 86400 * 7)
        ),
        bounce_suppression=timedelta(
            days=s.int("bounce_suppression_days", d.bounce_suppression.days, 0, 3650)
        ),
    )


def _priority(s: Section) -> PrioritySettings:
    d = PrioritySettings()
    floor = s.choice("floor", d.floor.value, tuple(f.value for f in Floor))
    return PrioritySettings(model=s.str("model", d.model), floor=Floor(floor))


def _logging(s: Section) -> LoggingSettings:
    d = LoggingSettings()
    return LoggingSettings(
        level=s.choice("level", d.level, ("debug", "info", "warning", "error")),
        format=s.choice("format", d.format, ("auto", "json", "console")),
    )


def _service(s: Section) -> ServiceSettings:
    d = ServiceSettings()
    return ServiceSettings(
        shutdown_grace=s.seconds("shutdown_grace_seconds", d.shutdown_grace, 1, 3600),
        stuck_pass=s.seconds("stuck_pass_seconds", d.stuck_pass, 1, 86400),
    )


def _http(s: Section) -> HttpSettings:
    d = HttpSettings()
    host = s.str("host", d.host)
    if not host:
        s.problem("host", "must be an address to listen on, such as 127.0.0.1", host)
        host = d.host
    return HttpSettings(host=host, port=s.int("port", d.port, 0, 65535))
