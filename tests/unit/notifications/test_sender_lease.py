"""The sender's lease: derived from the relay's timeout, wired by the composition root."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy.orm import sessionmaker

from mail2case.app import MAILDIR_LEASE, build_sender
from mail2case.config.settings import config_from_mapping
from notifications.render import build_environment
from notifications.sender import DEFAULT_LEASE, Sender, SenderSettings, lease_for
from notifications.transports import MaildirTransport

SUPPORT = "support@example.com"


def test_lease_covers_several_timeouts_and_a_margin() -> None:
    """The default relay timeout (30 s) gives the default lease; a longer one a longer lease."""
    assert lease_for(30) == DEFAULT_LEASE == timedelta(minutes=2)
    assert lease_for(60) == timedelta(seconds=210)


@pytest.mark.parametrize(
    ("outgoing", "lease"),
    [
        ({}, MAILDIR_LEASE),  # a local write: a crash holds acks back seconds, not minutes
        ({"transport": "smtp", "timeout_seconds": 5}, DEFAULT_LEASE),
        ({"transport": "smtp", "timeout_seconds": 100}, timedelta(seconds=330)),
    ],
)
def test_build_sender_takes_the_lease_from_the_timeout(
    outgoing: dict[str, Any], lease: timedelta
) -> None:
    """A maildir or a quick relay keeps the default; a slow relay's timeout lengthens it."""
    config = config_from_mapping({"support": {"address": SUPPORT}, "outgoing": outgoing})
    assert build_sender(config, sessionmaker()).lease == lease


def sender_with(**options: Any) -> Sender:
    """A sender that is never started, built with ``options`` (lease, claim_batch)."""
    settings = SenderSettings(from_name="S", from_addr=SUPPORT, loop_marker=SUPPORT)
    return Sender(
        sessionmaker(),
        MaildirTransport(Path("unused")),  # never written to
        build_environment(),
        settings,
        structlog.get_logger("test"),
        **options,
    )


def test_lease_must_be_positive() -> None:
    """A zero lease would let a second sender take a row being delivered."""
    with pytest.raises(ValueError, match="positive"):
        sender_with(lease=timedelta(0))


def test_claim_batch_must_hold_a_row() -> None:
    """An empty batch would claim nothing, and a pass would never send."""
    with pytest.raises(ValueError, match="at least one row"):
        sender_with(claim_batch=0)
