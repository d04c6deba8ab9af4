"""Configuration: TOML (or built-in defaults) validated into immutable settings."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ingest.sources.smtp import SmtpSettings
from ingest.triage.customers import CustomerDirectory, CustomerRule
from mail2case.config.imap import read_imap_settings
from mail2case.config.reader import ConfigError, Section
from notifications.breaker import BreakerSettings
from sla.business_hours import WorkingHours
from sla.policy import Clock, Plan, Priority, SlaPolicy, default_policy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ingest.sources.imap_settings import ImapSettings

ENV_VAR = "MAIL2CASE_CONFIG"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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
    """How outgoing mail leaves: a local maildir (default) or an SMTP relay."""

    transport: str = "maildir"
    maildir: str = "outgoing"
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_seconds: float = 30.0
    max_attempts: int = 8
    poll_interval_seconds: float = 2.0


@dataclass(frozen=True)
class ProcessingSettings:
    """The stage that turns raw inbound mail into case messages."""

    poll_interval_seconds: float = 1.0
    batch_size: int = 50
    max_parts: int = 1000
    attachments_dir: str = ""
    auto_reply_opens_case: bool = False
    # The poison-message bound (ingest.analysis.sandbox): per message, and attempts before
    # quarantine.
    message_timeout_seconds: float = 30.0
    message_memory_mb: int = 1024
    max_attempts: int = 3
    # The stage runs in a child process of its own (its own GIL; mail2case.service.process_child).
    separate_process: bool = True


@dataclass(frozen=True)
class BusinessHoursSettings:
    """Opening hours, working days and holidays; the zone is the team's, for display."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    opens: time = time(9)
    closes: time = time(18)
    weekdays: frozenset[int] = frozenset(range(5))
    holidays: frozenset[date] = frozenset()
    holiday_country: str = ""
    holiday_subdivision: str = ""


@dataclass(frozen=True)
class SlaSettings:
    """When reminders and escalations go out, and to whom.

    ``[sla] reminder_share`` is read into the policy (``Config.policy.reminder_share``).
    """

    escalation_address: str = ""
    remind_in_business_hours_only: bool = True
    poll_interval_seconds: float = 30.0


@dataclass(frozen=True)
class AgentSettings:
    """Who the agents are and where notifications go."""

    team_address: str = ""
    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    reply_secret: str = field(default="", repr=False)
    require_authentication: bool = False
    trusted_authserv_ids: frozenset[str] = frozenset()
    max_relays_per_hour: int = 20
    max_error_mails_per_hour: int = 3


@dataclass(frozen=True)
class LoggingSettings:
    """Log level and format (auto: console on a terminal, JSON otherwise)."""

    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class ServiceSettings:
    """How the daemon behaves as a system service: draining on stop, the watchdog."""

    shutdown_grace_seconds: float = 30.0
    # A stage pass running longer than this counts as stuck: watchdog pings stop.
    stuck_pass_seconds: float = 300.0


@dataclass(frozen=True)
class HttpSettings:
    """The health and metrics endpoint; port 0 leaves it off."""

    host: str = "127.0.0.1"
    port: int = 0


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
    agents: AgentSettings = field(default_factory=AgentSettings)
    customers: CustomerDirectory = field(
        default_factory=lambda: CustomerDirectory(
            (), CustomerRule("", frozenset(), frozenset(), "standard", "UTC")
        )
    )
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    imap: tuple[ImapSettings, ...] = ()
    service: ServiceSettings = field(default_factory=ServiceSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)


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
    policy = _policy(root.table("plans"), root.table("sla"))
    config = Config(
        source=source,
        database=_database(root.table("database")),
        smtp=_smtp(root.table("smtp")),
        support=_support(root.table("support")),
        outgoing=_outgoing(root.table("outgoing")),
        processing=_processing(root.table("processing")),
        templates_dir=root.table("templates").str("directory"),
        business_hours=_business_hours(root.table("business_hours")),
        policy=policy,
        sla=_sla(root.table("sla")),
        agents=_agents(root.table("agents")),
        customers=_customers(root, frozenset(policy.plans)),
        logging=_logging(root.table("logging")),
        imap=read_imap_settings(root),
        service=_service(root.table("service")),
        http=_http(root.table("http")),
        retention=RetentionSettings(raw_days=root.table("retention").int("raw_days", 0, 0, 36500)),
        breaker=_breaker(root.table("circuit_breaker")),
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
        starttls=s.bool("starttls", default=False),
        ssl=s.bool("ssl", default=False),
        username=s.str("username"),
        password=s.secret("password"),
        timeout_seconds=s.number("timeout_seconds", d.timeout_seconds, 1),
        max_attempts=s.int("max_attempts", d.max_attempts, 1, 1000),
        poll_interval_seconds=s.number("poll_interval_seconds", d.poll_interval_seconds, 0.05),
    )


def _processing(s: Section) -> ProcessingSettings:
    d = ProcessingSettings()
    return ProcessingSettings(
        poll_interval_seconds=s.number("poll_interval_seconds", d.poll_interval_seconds, 0.05),
        batch_size=s.int("batch_size", d.batch_size, 1, 10000),
        max_parts=s.int("max_parts", d.max_parts, 1, 100000),
        attachments_dir=s.str("attachments_dir"),
        auto_reply_opens_case=s.bool("auto_reply_opens_case", default=False),
        message_timeout_seconds=s.number(
            "message_timeout_seconds", d.message_timeout_seconds, 0.05, 3600
        ),
        message_memory_mb=s.int("message_memory_mb", d.message_memory_mb, 16, 1024 * 1024),
        max_attempts=s.int("max_attempts", d.max_attempts, 1, 100),
        separate_process=s.bool("separate_process", default=d.separate_process),
    )


def _working_hours(s: Section) -> WorkingHours:
    """``start``, ``end`` and ``days`` of a business-hours table."""
    opens, closes = s.clock_time("start", "09:00"), s.clock_time("end", "18:00")
    if opens >= closes:
        s.problem("end", "must be later than start", closes.isoformat("minutes"))
    days = s.str_list("days", WEEKDAYS[:5])
    bad = [d for d in days if d.lower() not in WEEKDAYS]
    if bad or not days:
        s.problem("days", "must be a non-empty list of mon, tue, wed, thu, fri, sat, sun", days)
        days = WEEKDAYS[:5]
    weekdays = frozenset(WEEKDAYS.index(d.lower()) for d in days if d.lower() in WEEKDAYS)
    return WorkingHours(opens=opens, closes=closes, weekdays=weekdays)


def _business_hours(s: Section) -> BusinessHoursSettings:
    hours = _working_hours(s)
    holidays = {s.as_date("holidays", v) for v in s.raw("holidays", [])} - {None}
    return BusinessHoursSettings(
        timezone=s.zone("timezone"),
        opens=hours.opens,
        closes=hours.closes,
        weekdays=hours.weekdays,
        holidays=frozenset(h for h in holidays if h is not None),
        holiday_country=s.str("holiday_country"),
        holiday_subdivision=s.str("holiday_subdivision"),
    )


def _policy(plans: Section, sla: Section) -> SlaPolicy:
    defaults = default_policy()
    names = set(defaults.plans) | set(plans.data)
    built = {name: _plan(plans.table(name), defaults.plans.get(name)) for name in sorted(names)}
    share = sla.number("reminder_share", defaults.reminder_share, 0.01, 0.99)
    return SlaPolicy(plans=built, reminder_share=share)


def _plan(s: Section, default: Plan | None) -> Plan:
    name = s.path.rpartition(".")[2]
    clock = Clock(
        s.choice("clock", default.clock if default else "business", ("business", "calendar"))
    )
    first = _hours(s, "first_response_hours", default.first_response if default else None)
    update = _hours(s, "update_hours", default.update if default else None)
    return Plan(name=name, clock=clock, first_response=first, update=update)


def _hours(
    s: Section, name: str, default: Mapping[Priority, timedelta] | None
) -> dict[Priority, timedelta]:
    table = s.table(name)
    fallback = default or {p: timedelta(hours=8) for p in Priority}
    if default is None and not table.data:
        s.problem(name, "must give hours for high, medium and low")
    return {
        p: timedelta(hours=table.number(p.value, fallback[p].total_seconds() / 3600, 0.01, 10000))
        for p in Priority
    }


def _sla(s: Section) -> SlaSettings:
    d = SlaSettings()
    return SlaSettings(
        escalation_address=s.str("escalation_address"),
        remind_in_business_hours_only=s.bool("remind_in_business_hours_only", default=True),
        poll_interval_seconds=s.number("poll_interval_seconds", d.poll_interval_seconds, 0.05),
    )


def _agents(s: Section) -> AgentSettings:
    d = AgentSettings()
    require = s.bool("require_authentication", default=d.require_authentication)
    trusted = frozenset(i.lower() for i in s.str_list("trusted_authserv_ids"))
    if require and not trusted:
        s.problem("trusted_authserv_ids", "required when require_authentication is true")
    return AgentSettings(
        team_address=s.str("team_address"),
        addresses=frozenset(a.lower() for a in s.str_list("addresses")),
        domains=frozenset(d.lower() for d in s.str_list("domains")),
        reply_secret=s.secret("reply_secret"),
        require_authentication=require,
        trusted_authserv_ids=trusted,
        max_relays_per_hour=s.int("max_relays_per_hour", d.max_relays_per_hour, 1, 10000),
        max_error_mails_per_hour=s.int(
            "max_error_mails_per_hour", d.max_error_mails_per_hour, 0, 10000
        ),
    )


def _customers(root: Section, plans: frozenset[str]) -> CustomerDirectory:
    default = _customer(root.table("default_customer"), plans, is_default=True)
    rules = tuple(_customer(t, plans, is_default=False) for t in root.tables("customers"))
    return CustomerDirectory(rules=rules, default=default)


def _customer(s: Section, plans: frozenset[str], *, is_default: bool) -> CustomerRule:
    name = s.str("name", "" if is_default else s.path)
    plan = s.str("plan", "standard")
    if plan not in plans:
        s.problem("plan", f"no such plan; configured plans are {', '.join(sorted(plans))}", plan)
        plan = "standard" if "standard" in plans else min(plans)
    tz = s.zone("timezone")
    addresses = () if is_default else s.str_list("addresses")
    domains = () if is_default else s.str_list("domains")
    if not is_default and not addresses and not domains:
        s.problem("addresses", "a customer needs addresses or domains to match senders")
    return CustomerRule(
        name=name,
        addresses=frozenset(a.lower() for a in addresses),
        domains=frozenset(d.lower().lstrip("@") for d in domains),
        plan=plan,
        timezone=tz.key,
        paid_through=s.optional_date("paid_through"),
        team_address="" if is_default else s.str("team_address"),
        hours=_working_hours(s.table("business_hours")) if "business_hours" in s.data else None,
    )


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


def _logging(s: Section) -> LoggingSettings:
    return LoggingSettings(
        level=s.choice("level", "info", ("debug", "info", "warning", "error")),
        format=s.choice("format", "auto", ("auto", "json", "console")),
    )


def _service(s: Section) -> ServiceSettings:
    d = ServiceSettings()
    return ServiceSettings(
        shutdown_grace_seconds=s.number(
            "shutdown_grace_seconds", d.shutdown_grace_seconds, 1, 3600
        ),
        stuck_pass_seconds=s.number("stuck_pass_seconds", d.stuck_pass_seconds, 1, 86400),
    )


def _http(s: Section) -> HttpSettings:
    d = HttpSettings()
    host = s.str("host", d.host)
    if not host:
        s.problem("host", "must be an address to listen on, such as 127.0.0.1", host)
        host = d.host
    return HttpSettings(host=host, port=s.int("port", d.port, 0, 65535))
