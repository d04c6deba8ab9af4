"""[[imap]] settings validation, JWT expiry reading and the IMAP backoff value."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest.sources.imap import Backoff, token_expires_at
from ingest.sources.imap_settings import ImapSettings
from mail2case.config.reader import ConfigError
from mail2case.config.settings import config_from_mapping

BASE = {"host": "imap.example.com", "username": "support@example.com", "password": "pw"}


def imap(*tables: dict[str, Any]) -> tuple[ImapSettings, ...]:
    """The validated [[imap]] settings of a config holding ``tables``."""
    return config_from_mapping({"imap": list(tables)}).imap


def problems(*tables: dict[str, Any]) -> list[str]:
    """The config problems reported for ``tables``."""
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"imap": list(tables)})
    return info.value.problems


def test_no_imap_table_means_no_mailbox() -> None:
    """Without [[imap]] tables the daemon reads no mailbox."""
    assert config_from_mapping({}).imap == ()


def test_defaults_follow_the_documented_values() -> None:
    """Unset keys take the documented defaults; the port follows tls and the name is derived."""
    (box,) = imap(BASE)
    assert (box.port, box.tls, box.folder, box.processed, box.processed_folder) == (
        993,
        "ssl",
        "INBOX",
        "move",
        "Processed",
    )
    assert box.name == "imap.example.com/support@example.com/INBOX"
    assert (box.idle, box.poll_interval_seconds, box.idle_timeout_seconds) == (True, 60, 1500)
    assert (box.max_message_size, box.batch_size, box.lease_seconds) == (25 * 2**20, 100, 60)
    assert imap({**BASE, "tls": "starttls"})[0].port == 143
    assert "pw" not in repr(box)


def test_bad_values_are_reported_with_their_dotted_keys() -> None:
    """Each bad value is reported once, naming imap[i].key and the value given."""
    found = problems(BASE, {**BASE, "port": 99999, "tls": "tls", "processed": "delete"})
    assert "imap[1].port: must be an integer between 1 and 65535 (got 99999)" in found
    assert "imap[1].tls: must be one of ssl, starttls, none (got 'tls')" in found
    assert "imap[1].processed: must be one of move, flag (got 'delete')" in found
    assert "imap[1].name: must be unique among the [[imap]] mailboxes" in " ".join(found)


def test_credentials_must_be_exactly_one() -> None:
    """A mailbox needs one credential: none, or a password beside a token, is an error."""
    none = problems({"host": "h", "username": "u"})
    assert any(p.startswith("imap[0].password: set one of password, password_file") for p in none)
    both = problems({**BASE, "oauth2_token_command": "get-token"})
    assert both == ["imap[0].password: set only one of password, oauth2_token_command"]
    two = problems({**BASE, "password_env": "X"})
    assert two == ["imap[0].password: set only one of password, password_env"]


def test_required_keys_and_unknown_keys() -> None:
    """The host and username are required, and a misspelt key is not silently ignored."""
    found = problems({"password": "pw", "folderr": "Support"})
    assert "imap[0].host: must be set" in found
    assert "imap[0].username: must be set" in found
    assert "imap[0].folderr: unknown key" in found


def test_idle_timeout_is_capped_at_29_minutes() -> None:
    """RFC 2177: IDLE must be re-issued within 29 minutes, so longer timeouts are refused."""
    assert problems({**BASE, "idle_timeout_seconds": 1800}) == [
        "imap[0].idle_timeout_seconds: must be a number between 1 and 1740 (got 1800.0)"
    ]


def test_move_needs_a_different_folder() -> None:
    """Moving processed mail into the folder being read would loop; it is refused."""
    assert problems({**BASE, "folder": "Support", "processed_folder": "Support"}) == [
        "imap[0].processed_folder: must name a folder other than folder (got 'Support')"
    ]
    assert imap({**BASE, "processed": "flag", "processed_folder": ""})[0].processed == "flag"


def jwt(payload: dict[str, Any]) -> str:
    """An unsigned JWT with ``payload`` (only the claims matter here)."""
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{body}.sig"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (jwt({"exp": 1_800_000_000}), datetime.fromtimestamp(1_800_000_000, UTC)),
        (jwt({"sub": "no exp"}), None),
        ("ya29.opaque-google-token", None),
        ("a.b!.c", None),
    ],
)
def test_token_expiry_is_read_from_jwt_only(token: str, expected: datetime | None) -> None:
    """A JWT's exp claim is the expiry; opaque or malformed tokens have none we can know."""
    assert token_expires_at(token) == expected


def test_backoff_doubles_to_its_cap_and_stays_immutable() -> None:
    """Each step doubles the ceiling up to the cap; next() returns a new value."""
    b = Backoff(base_seconds=1, cap_seconds=10)
    ceilings = []
    for _ in range(6):
        ceilings.append(b.ceiling())
        b = b.next()
    assert ceilings == [1, 2, 4, 8, 10, 10]
    assert b.attempt == 6
    assert b.reset().attempt == 0
    assert Backoff().attempt == 0


def test_backoff_delay_is_never_a_tight_loop() -> None:
    """The jittered delay lies in the upper half of the ceiling, never near zero."""
    rng = random.Random(7)
    b = Backoff(attempt=3, base_seconds=1, cap_seconds=300)
    delays = [b.delay(rng) for _ in range(200)]
    assert all(4 <= d <= 8 for d in delays)
    assert len(set(delays)) > 100
