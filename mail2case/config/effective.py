"""The effective settings by name: what ``check-config`` prints and SIGHUP reports as changed.

The names are those of the settings as validated (``outgoing.timeout_seconds``,
``business_hours.opens``), one table per section; durations are printed in seconds.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from ingest.agents.outbox import AgentMailSettings
    from mail2case.config.service_levels import BusinessHoursSettings
    from mail2case.config.settings import (
        Config,
        OutgoingSettings,
        ProcessingSettings,
        ServiceSettings,
        SlaSettings,
    )
    from mail2case.config.web import WebSettings

MASK = "***"
# Compared as a whole on reload: a change of one customer is a change of the directory.
WHOLE_SECTIONS = frozenset({"customers"})


def effective_settings(config: Config) -> dict[str, Any]:
    """Every setting as plain JSON-ready data, secrets included."""
    return {
        "source": config.source,
        "database": plain(config.database),
        "smtp": plain(config.smtp),
        "support": plain(config.support),
        "outgoing": _outgoing(config.outgoing),
        "processing": _processing(config.processing),
        "templates_dir": config.templates_dir,
        "business_hours": _business_hours(config.business_hours),
        "policy": plain(config.policy),
        "sla": _sla(config.sla),
        "agents": _agents(config.agents, config.agent_addresses, config.agent_domains),
        "customers": plain(config.customers),
        "logging": plain(config.logging),
        "imap": plain(config.imap),
        "service": _service(config.service),
        "http": plain(config.http),
        "retention": plain(config.retention),
        "breaker": plain(config.breaker),
        "priority": plain(config.priority),
        "web": _web(config.web),
    }


def masked_settings(config: Config) -> dict[str, Any]:
    """The effective settings with every secret replaced by ``***`` (empty stays empty)."""
    out = effective_settings(config)
    out["database"]["url"] = masked_url(config.database.url)
    out["outgoing"]["password"] = MASK if config.outgoing.password else ""
    out["agents"]["reply_secret"] = MASK if config.agents.reply_secret else ""
    out["agents"]["previous_reply_secrets"] = [MASK for _ in config.agents.previous_reply_secrets]
    for box in out["imap"]:
        box["password"] = MASK if box["password"] else ""
    return out


def masked_url(url: str) -> str:
    """A database URL with its password (if any) as ``***``; unparsable ones wholly masked."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return MASK
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)  # the password as ***


def changed_keys(old: Config, new: Config) -> list[str]:
    """Dotted names whose values differ, one level into each section, in printed order."""
    before, after = effective_settings(old), effective_settings(new)
    keys: list[str] = []
    for section, a in before.items():
        b = after[section]
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and section not in WHOLE_SECTIONS:
            keys += [f"{section}.{name}" for name, value in a.items() if value != b.get(name)]
        else:
            keys.append(section)
    return keys


def plain(value: Any) -> Any:
    """A settings value as JSON-ready data: dataclasses and mappings as dicts, sets sorted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (frozenset, set, tuple, list)):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (frozenset, set)) else items
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _outgoing(out: OutgoingSettings) -> dict[str, Any]:
    return {
        "transport": out.transport,
        "maildir": out.maildir,
        "host": out.host,
        "port": out.port,
        "starttls": out.starttls,
        "ssl": out.ssl,
        "username": out.username,
        "password": out.password,
        "timeout_seconds": out.timeout.total_seconds(),
        "max_attempts": out.max_attempts,
        "poll_interval_seconds": out.poll_interval.total_seconds(),
    }


def _processing(p: ProcessingSettings) -> dict[str, Any]:
    return {
        "poll_interval_seconds": p.poll_interval.total_seconds(),
        "batch_size": p.batch_size,
        "max_parts": p.max_parts,
        "attachments_dir": str(p.attachments_dir or ""),
        "auto_reply_opens_case": p.auto_reply_opens_case,
        "message_timeout_seconds": p.limits.timeout.total_seconds(),
        "message_memory_mb": p.limits.memory_mb,
        "max_attempts": p.max_attempts,
        "analysis_workers": p.analysis_workers,
        "separate_process": p.separate_process,
    }


def _business_hours(bh: BusinessHoursSettings) -> dict[str, Any]:
    calendar = bh.calendar
    return {
        "timezone": calendar.tz.key,
        "opens": plain(calendar.opens),
        "closes": plain(calendar.closes),
        "weekdays": plain(calendar.weekdays),
        "holidays": plain(calendar.holidays),
        "holiday_country": bh.holiday_country,
        "holiday_subdivision": bh.holiday_subdivision,
    }


def _sla(sla: SlaSettings) -> dict[str, Any]:
    return {
        "escalation_address": sla.escalation_address,
        "remind_in_business_hours_only": sla.remind_in_business_hours_only,
        "poll_interval_seconds": sla.poll_interval.total_seconds(),
    }


def _agents(
    agents: AgentMailSettings, addresses: frozenset[str], domains: frozenset[str]
) -> dict[str, Any]:
    return {
        "team_address": agents.team_address,
        "addresses": plain(addresses),
        "domains": plain(domains),
        "reply_secret": agents.reply_secret,
        "previous_reply_secrets": list(agents.previous_reply_secrets),
        "require_authentication": agents.require_authentication,
        "trusted_authserv_ids": plain(agents.trusted_authserv_ids),
        "max_relays_per_hour": agents.max_relays_per_hour,
        "max_error_mails_per_hour": agents.max_error_mails_per_hour,
        "max_relays_per_agent_per_hour": agents.max_relays_per_agent_per_hour,
        "max_relay_recipients": agents.max_relay_recipients,
        "names": dict(agents.names),
    }


def _service(service: ServiceSettings) -> dict[str, Any]:
    return {
        "shutdown_grace_seconds": service.shutdown_grace.total_seconds(),
        "stuck_pass_seconds": service.stuck_pass.total_seconds(),
    }


def _web(web: WebSettings) -> dict[str, Any]:
    return {
        "enabled": web.enabled,
        "host": web.host,
        "port": web.port,
        "base_url": web.base_url,
        "session_secret_file": web.session_secret_file,
        "session_hours": web.session_lifetime.total_seconds() / 3600,
        "link_minutes": web.link_lifetime.total_seconds() / 60,
        "links_per_hour": web.links_per_hour,
        "refresh_seconds": web.refresh.total_seconds(),
        "trusted_proxies": list(web.trusted_proxies),
        "proxy_user_header": web.proxy_user_header,
    }
