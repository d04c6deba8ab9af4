"""A reduced crash campaign: SIGKILL during receive, process and send loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifications.sender import DEFAULT_CLAIM_BATCH
from tests.faults.harness import Campaign, run_campaign


@pytest.mark.timeout(600)
def test_sigkill_campaign_loses_nothing(tmp_path: Path) -> None:
    """Every 250'd message is stored once and acknowledged once, across repeated SIGKILLs."""
    report = run_campaign(tmp_path, Campaign(messages=150, clients=4, kills=4, seed=7))
    assert report["kills"] == 4
    assert report["settled"], report
    assert report["accepted"] == 150
    assert report["lost"] == []
    assert report["duplicates"] == []
    assert report["cases_without_one_ack"] == 0
    assert report["cases_without_first_clock"] == 0
    assert report["pending_after_settle"] == 0
    assert report["quarantined"] == {}  # a kill is no message's fault
    assert report["unsent_after_settle"] == 0
    # At-least-once delivery to the transport: a crash between the maildir write and the
    # commit that records it may deliver an ack twice, recognisable by the same Message-ID;
    # the sender records a batch at a time, so one kill re-sends at most one batch.
    assert report["acks_delivered"] >= report["cases"]
    assert report["acks_delivered_twice"] <= report["kills"] * DEFAULT_CLAIM_BATCH
