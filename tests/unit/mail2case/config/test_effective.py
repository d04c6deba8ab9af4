"""The effective settings by name: check-config's output and SIGHUP's changed keys, pinned.

The JSON files in ``data/`` were written by check-config before the settings were read
into the components' own classes; the output must not move when the classes do.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mail2case.config.effective import changed_keys, effective_settings, masked_settings
from mail2case.config.settings import Config, config_from_mapping, load_config
from mail2case.service.reload import classify_change, effective
from tests.support.services import REPO

DATA = Path(__file__).parent / "data"
EVERY_KEY = DATA / "every_key.toml"
SECRETS = ("relay-secret", "reply-secret", "imap-secret", "db-secret", "old-reply-secret")


def golden(name: str) -> dict[str, Any]:
    """A pinned output, read back from its JSON file."""
    loaded: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def printed(config: Config) -> dict[str, Any]:
    """What check-config prints for ``config``, without the source line, as parsed JSON."""
    out: dict[str, Any] = json.loads(json.dumps(masked_settings(config), default=str))
    del out["source"]
    return out


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("check_config_defaults", Config()),
        ("check_config_example", load_config(REPO / "config.example.toml")),
        ("check_config_every_key", load_config(EVERY_KEY)),
    ],
)
def test_check_config_prints_what_it_always_printed(name: str, config: Config) -> None:
    """Built-in defaults, the example file and a file setting every key print as pinned."""
    assert printed(config) == golden(name)


def test_every_key_file_sets_every_key_away_from_its_default() -> None:
    """The pinned file differs from the defaults in every setting the output shows."""
    defaults, every = printed(Config()), golden("check_config_every_key")
    same = [
        f"{section}.{key}"
        for section, table in defaults.items()
        if isinstance(table, dict)
        for key, value in table.items()
        if every[section].get(key) == value
    ]
    # ssl and starttls exclude each other: the file turns STARTTLS on.
    assert same == ["outgoing.ssl"]


def test_secrets_are_masked_and_only_there() -> None:
    """Each secret shows as *** in the printed output and in full in the effective settings."""
    config = load_config(EVERY_KEY)
    text = json.dumps(masked_settings(config), default=str)
    assert not [secret for secret in SECRETS if secret in text]
    full = json.dumps(effective_settings(config), default=str)
    assert all(secret in full for secret in SECRETS)


def test_reload_reports_the_keys_it_always_reported() -> None:
    """Defaults to every key changed: the applied and restart lists are as pinned."""
    change = classify_change(Config(), load_config(EVERY_KEY))
    assert golden("reload_change_every_key") == {
        "applied": list(change.applied),
        "needs_restart": list(change.needs_restart),
    }


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"agents": {"addresses": ["ann@example.com"]}}, "agents.addresses"),
        ({"agents": {"max_relays_per_hour": 5}}, "agents.max_relays_per_hour"),
        ({"sla": {"poll_interval_seconds": 5}}, "sla.poll_interval_seconds"),
        ({"processing": {"message_timeout_seconds": 5}}, "processing.message_timeout_seconds"),
        ({"business_hours": {"start": "08:00"}}, "business_hours.opens"),
        ({"outgoing": {"timeout_seconds": 5}}, "outgoing.timeout_seconds"),
        ({"service": {"stuck_pass_seconds": 5}}, "service.stuck_pass_seconds"),
        ({"default_customer": {"timezone": "Europe/Paris"}}, "customers"),
    ],
)
def test_one_change_is_one_key(change: dict[str, Any], key: str) -> None:
    """A single changed setting is reported under the one name check-config prints it by."""
    assert changed_keys(Config(), config_from_mapping(change, source=Config().source)) == [key]


def test_reload_applies_who_the_agents_are_and_keeps_the_intervals() -> None:
    """SIGHUP takes [agents] (addresses and domains too) but keeps the scheduler's interval."""
    new = config_from_mapping(
        {
            "agents": {"addresses": ["ann@example.com"], "domains": ["staff.example"]},
            "sla": {"poll_interval_seconds": 5, "escalation_address": "boss@example.com"},
            "outgoing": {"poll_interval_seconds": 9},
        }
    )
    running = effective(Config(), new)
    assert running.agent_addresses == frozenset({"ann@example.com"})
    assert running.agent_domains == frozenset({"staff.example"})
    assert running.sla == dataclasses.replace(new.sla, poll_interval=Config().sla.poll_interval)
    assert running.outgoing == Config().outgoing
