"""Configuration: defaults, the example file, and errors that name their keys."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.agents.outbox import AgentMailSettings
from ingest.analysis.sandbox import Limits
from ingest.settings import ProcessSettings
from mail2case.config.reader import ConfigError, field_default
from mail2case.config.settings import Config, config_from_mapping, config_path, load_config
from notifications.breaker import BreakerSettings
from notifications.sender import SenderSettings
from sla.business_hours import BusinessCalendar
from sla.policy import Clock, Priority
from sla.scheduler import SchedulerSettings
from tests.support.services import REPO

EXAMPLE = REPO / "config.example.toml"


def problems_of(data: dict[str, object]) -> list[str]:
    """The problems a mapping produces (empty when valid)."""
    try:
        config_from_mapping(data)
    except ConfigError as exc:
        return exc.problems
    return []


def test_example_file_equals_built_in_defaults() -> None:
    """Every value in config.example.toml is the built-in default."""
    example = load_config(EXAMPLE)
    default = Config()
    for item in dataclasses.fields(Config):
        if item.name in {"source", "imap"}:  # imap: the example's entries are comments
            continue
        assert getattr(example, item.name) == getattr(default, item.name), item.name


def test_policy_defaults_match_design_table() -> None:
    """The default plans carry the support policy's targets and clocks."""
    policy = Config().policy
    standard, premier = policy.plan("standard"), policy.plan("premier")
    assert standard.clock is Clock.BUSINESS
    assert premier.clock is Clock.CALENDAR
    assert standard.target("first", Priority.MEDIUM) == timedelta(hours=9)
    assert premier.target("update", Priority.LOW) == timedelta(hours=24)
    assert premier.target("first", Priority.HIGH) == timedelta(hours=1)


def test_every_problem_is_reported_with_its_key() -> None:
    """Several bad values are all reported, each naming its dotted key and the value."""
    found = problems_of(
        {
            "smtp": {"port": 99999, "host": 5},
            "outgoing": {"transport": "pigeon"},
            "business_hours": {"timezone": "Mars/Base", "start": "18:00", "end": "09:00"},
            "plans": {"premier": {"first_response_hours": {"high": -1}}},
        }
    )
    text = "\n".join(found)
    assert "smtp.port: must be an integer between 1 and 65535 (got 99999)" in text
    assert "smtp.host: must be a string (got 5)" in text
    assert "outgoing.transport: must be one of maildir, smtp (got 'pigeon')" in text
    assert "business_hours.timezone:" in text
    assert "business_hours.end: must be later than start" in text
    assert "plans.premier.first_response_hours.high:" in text


def test_unknown_keys_are_problems() -> None:
    """A misspelt key is reported rather than silently ignored."""
    assert problems_of({"smtp": {"prot": 25}}) == ["smtp.prot: unknown key"]
    assert problems_of({"customers": [{"domains": ["a.example"], "plna": "x"}]}) == [
        "customers[0].plna: unknown key"
    ]


def test_customer_needs_a_match_and_a_known_plan() -> None:
    """A customer entry without addresses or domains, or naming no plan we have, is refused."""
    text = "\n".join(problems_of({"customers": [{"plan": "gold"}]}))
    assert "customers[0].addresses:" in text
    assert "customers[0].plan: no such plan" in text


def test_secret_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets come from a *_file or *_env key; giving two sources is an error."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    cfg = config_from_mapping({"outgoing": {"password_file": str(secret)}})
    assert cfg.outgoing.password == "s3cret"
    monkeypatch.setenv("RELAY_PW", "fromenv")
    assert (
        config_from_mapping({"outgoing": {"password_env": "RELAY_PW"}}).outgoing.password
        == "fromenv"
    )
    both = problems_of({"outgoing": {"password": "x", "password_env": "RELAY_PW"}})
    assert both == ["outgoing.password: set only one of password, password_env"]
    assert "s3cret" not in repr(cfg)


def test_config_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    """--config wins over $MAIL2CASE_CONFIG, which wins over the built-in defaults."""
    monkeypatch.delenv("MAIL2CASE_CONFIG", raising=False)
    assert config_path(None) is None
    monkeypatch.setenv("MAIL2CASE_CONFIG", "/etc/env.toml")
    assert config_path(None) == Path("/etc/env.toml")
    assert config_path("/tmp/cli.toml") == Path("/tmp/cli.toml")


def test_business_hours_and_holidays_parse() -> None:
    """Hours, days and holidays (TOML dates or strings) become calendar settings."""
    cfg = config_from_mapping(
        {
            "business_hours": {
                "start": "08:30",
                "end": "17:00",
                "days": ["mon", "sat"],
                "holidays": [date(2026, 12, 25), "2026-12-26"],
            }
        }
    )
    bh = cfg.business_hours.calendar
    assert (bh.opens, bh.closes) == (time(8, 30), time(17))
    assert bh.weekdays == frozenset({0, 5})
    assert bh.holidays == frozenset({date(2026, 12, 25), date(2026, 12, 26)})


def test_customers_downgrade_waits_for_paid_term() -> None:
    """A customer moved to standard keeps premier until its paid term has ended."""
    cfg = config_from_mapping(
        {
            "customers": [
                {
                    "name": "Acme",
                    "domains": ["acme.example"],
                    "plan": "standard",
                    "timezone": "Europe/Berlin",
                    "paid_through": date(2026, 12, 31),
                }
            ]
        }
    )
    rule = cfg.customers.resolve("bob@acme.example")
    assert rule.name == "Acme"
    assert rule.plan_on(date(2026, 12, 31)) == "premier"
    assert rule.plan_on(date(2027, 1, 1)) == "standard"


def test_example_is_valid_toml_with_every_section() -> None:
    """The example documents every top-level section the loader reads."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert {
        "database",
        "smtp",
        "support",
        "outgoing",
        "business_hours",
        "plans",
        "sla",
        "agents",
    } <= set(data)


def test_sections_are_the_components_own_settings() -> None:
    """[agents] is the agent mail's settings, [processing]'s bound the sandbox's, as read."""
    cfg = config_from_mapping(
        {
            "agents": {
                "team_address": "team@example.com",
                "addresses": ["Ann@Example.com"],
                "domains": ["Staff.Example.com"],
                "max_relays_per_hour": 7,
            },
            "processing": {"message_timeout_seconds": 2.5, "message_memory_mb": 64},
            "circuit_breaker": {"window_seconds": 600},
        }
    )
    assert cfg.agents == AgentMailSettings(team_address="team@example.com", max_relays_per_hour=7)
    assert (cfg.agent_addresses, cfg.agent_domains) == (
        frozenset({"ann@example.com"}),
        frozenset({"staff.example.com"}),
    )
    assert cfg.processing.limits == Limits(timeout=timedelta(seconds=2.5), memory_mb=64)
    assert cfg.breaker == BreakerSettings(window=timedelta(minutes=10))


def test_durations_are_timedeltas() -> None:
    """Every *_seconds key is read as a timedelta."""
    cfg = config_from_mapping(
        {
            "outgoing": {"timeout_seconds": 12.5, "poll_interval_seconds": 0.5},
            "processing": {"poll_interval_seconds": 0.25},
            "sla": {"poll_interval_seconds": 15},
            "service": {"shutdown_grace_seconds": 7, "stuck_pass_seconds": 90},
        }
    )
    assert (cfg.outgoing.timeout, cfg.outgoing.poll_interval) == (
        timedelta(seconds=12.5),
        timedelta(milliseconds=500),
    )
    assert cfg.processing.poll_interval == timedelta(milliseconds=250)
    assert cfg.sla.poll_interval == timedelta(seconds=15)
    assert (cfg.service.shutdown_grace, cfg.service.stuck_pass) == (
        timedelta(seconds=7),
        timedelta(seconds=90),
    )


def test_defaults_are_the_components_own() -> None:
    """An empty file gives each component's own defaults: they are declared once."""
    cfg = config_from_mapping({})
    assert cfg.agents == AgentMailSettings()
    assert cfg.processing.limits == Limits()
    assert cfg.breaker == BreakerSettings()
    assert cfg.business_hours.calendar == BusinessCalendar(ZoneInfo("UTC"))
    assert cfg.outgoing.max_attempts == field_default(SenderSettings, "max_attempts")
    assert cfg.sla.remind_in_business_hours_only == field_default(
        SchedulerSettings, "remind_in_business_hours_only"
    )
    for name in ("batch_size", "max_parts", "auto_reply_opens_case", "max_attempts"):
        assert getattr(cfg.processing, name) == field_default(ProcessSettings, name), name


def test_field_default_of_a_field_without_one() -> None:
    """Asking for a default a class does not declare is a programming error, said plainly."""
    with pytest.raises(LookupError, match=r"SenderSettings\.from_addr has no default"):
        field_default(SenderSettings, "from_addr")
    with pytest.raises(LookupError, match=r"SenderSettings\.nothing has no default"):
        field_default(SenderSettings, "nothing")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"outgoing": {"timeout_seconds": 0.5}},
            "outgoing.timeout_seconds: must be a number between 1 and None (got 0.5)",
        ),
        (
            {"processing": {"message_timeout_seconds": 4000}},
            (
                "processing.message_timeout_seconds: must be a number between 0.05 and 3600 "
                "(got 4000.0)"
            ),
        ),
        (
            {"processing": {"analysis_workers": 0}},
            "processing.analysis_workers: must be an integer between 1 and 64 (got 0)",
        ),
        (
            {"sla": {"poll_interval_seconds": "30s"}},
            "sla.poll_interval_seconds: must be a number (got '30s')",
        ),
        (
            {"service": {"stuck_pass_seconds": True}},
            "service.stuck_pass_seconds: must be a number (got True)",
        ),
        (
            {"business_hours": {"holidays": [datetime(2026, 12, 25, 9, tzinfo=UTC)]}},
            (
                "business_hours.holidays: must be a date as YYYY-MM-DD "
                "(got datetime.datetime(2026, 12, 25, 9, 0, tzinfo=datetime.timezone.utc))"
            ),
        ),
        (
            {"business_hours": {"start": "10:00", "end": "10:00"}},
            "business_hours.end: must be later than start (got '10:00')",
        ),
    ],
)
def test_bad_values_name_their_key(data: dict[str, object], problem: str) -> None:
    """A bad duration, date or opening time is one problem naming the key and the value."""
    assert problems_of(data) == [problem]
