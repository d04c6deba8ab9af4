"""Configuration: defaults, the example file, and errors that name their keys."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from mail2case.config.reader import ConfigError
from mail2case.config.settings import Config, config_from_mapping, config_path, load_config
from sla.policy import Clock, Priority
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
    bh = cfg.business_hours
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
