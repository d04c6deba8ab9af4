"""End to end through the CLI: a case's SLA clocks, reminders, escalations and status changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from ingest.agents.reply_address import reply_address
from tests.support.daemon import Site
from tests.support.mail import plain_mail

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "e2e-reply-secret-0123456789abcdef"
EXTRA = f"""
[agents]
team_address = "team@example.com"
addresses = ["agent@example.com"]
reply_secret = "{SECRET}"
[sla]
escalation_address = "duty@example.com"
[[customers]]
name = "Acme"
domains = ["customer.example"]
plan = "premier"
timezone = "Europe/Berlin"
"""


def message(
    sender: str,
    subject: str,
    body: str,
    in_reply_to: str | None = None,
    to: str = "support@example.com",
) -> bytes:
    """A plain message to ``to``, optionally replying to ``in_reply_to``."""
    replying = {"In_Reply_To": in_reply_to} if in_reply_to else {}
    return plain_mail(sender, subject, body, to=to, domain="test.example", **replying).as_bytes()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A site where customer.example is premier, with agents and an escalation address."""
    s = Site(tmp_path, extra=EXTRA)
    s.write()
    return s


def tick(site: Site, at: datetime) -> list[dict[str, Any]]:
    """``sla tick --now AT --json``: what the pass queued."""
    return list(site.cli_json("sla", "tick", "--now", at.isoformat())["queued"])


def clocks_of(site: Site, ref: int) -> list[dict[str, Any]]:
    """``sla status --json`` rows of case ``ref``."""
    return [row for row in site.cli_json("sla", "status") if row["case_ref"] == ref]


def open_case(site: Site) -> tuple[int, str]:
    """Ingest a customer mail from stdin; returns the case ref and the ack's Message-ID."""
    site.cli("ingest", stdin=message("ann@customer.example", "Export broken", "It fails."))
    (case,) = site.cli_json("cases", "list")
    shown = site.cli_json("cases", "show", str(case["ref"]))
    (ack,) = [m for m in shown["messages"] if m["kind"] == "ack"]
    return case["ref"], ack["message_id"]


def at(text: str) -> datetime:
    """An ISO 8601 time from the CLI's JSON."""
    return datetime.fromisoformat(text)


def test_reminder_then_escalation_once(site: Site) -> None:
    """Ticks before the threshold queue nothing, past it one reminder, past due one escalation."""
    ref, _ = open_case(site)
    (clock,) = clocks_of(site, ref)
    assert clock["clock"] == "first"
    assert clock["plan"] == "premier"
    remind, due = at(clock["remind_at"]), at(clock["due"])
    assert tick(site, remind - timedelta(minutes=1)) == []
    (reminder,) = tick(site, remind)
    assert (reminder["kind"], reminder["case_ref"], reminder["to"]) == (
        "reminder",
        ref,
        "team@example.com",
    )
    assert tick(site, remind + timedelta(minutes=1)) == []
    (escalation,) = tick(site, due)
    assert (escalation["kind"], escalation["to"]) == ("escalation", "duty@example.com")
    assert tick(site, due + timedelta(hours=1)) == []
    kinds = [row["kind"] for row in site.cli_json("outbox", "list")]
    assert (kinds.count("reminder"), kinds.count("escalation")) == (1, 1)


def test_agent_reply_pending_and_customer_reply(site: Site) -> None:
    """An agent's reply meets the first clock, pending stops updates, the customer restarts them."""
    ref, ack_id = open_case(site)
    # Agents answer through the case's signed reply address (their notification's Reply-To).
    to = reply_address(site.support, ref, SECRET)
    agent_reply = message("agent@example.com", "Re: Export broken", "On it.", ack_id, to)
    site.cli("ingest", stdin=agent_reply)
    shown = site.cli_json("cases", "show", str(ref))
    assert shown["first_responded_at"] is not None
    assert shown["next_update_due"] is not None
    assert [c["clock"] for c in clocks_of(site, ref)] == ["update"]

    site.cli("cases", "update", str(ref), "--status", "pending", "--actor", "agent@example.com")
    assert clocks_of(site, ref) == []
    shown = site.cli_json("cases", "show", str(ref))
    assert (shown["status"], shown["next_update_due"]) == ("pending", None)

    site.cli(
        "ingest", stdin=message("ann@customer.example", "Re: Export broken", "Details.", ack_id)
    )
    (update,) = clocks_of(site, ref)
    assert update["clock"] == "update"
    assert site.cli_json("cases", "show", str(ref))["status"] == "open"


def test_priority_recategorized_from_cli_with_who_and_why(site: Site) -> None:
    """``cases update --priority`` moves the deadline and records actor and reason."""
    ref, _ = open_case(site)
    (before,) = clocks_of(site, ref)
    new = "low" if before["priority"] != "low" else "high"
    site.cli(
        "cases", "update", str(ref), "--priority", new, "--reason", "how-to question",
        "--actor", "lead@example.com",
    )  # fmt: skip
    (after,) = clocks_of(site, ref)
    assert after["priority"] == new
    assert after["started"] == before["started"]
    assert after["due"] != before["due"]
    events = site.cli_json("cases", "show", str(ref))["events"]
    (changed,) = [e for e in events if e["kind"] == "priority_changed"]
    assert changed["actor"] == "lead@example.com"
    assert changed["data"]["reason"] == "how-to question"
    assert (changed["data"]["from"], changed["data"]["to"]) == (before["priority"], new)


def test_cases_update_needs_a_reason_for_priority(site: Site) -> None:
    """A priority change without a reason is refused with exit 2, and nothing changes."""
    ref, _ = open_case(site)
    proc = site.cli("cases", "update", str(ref), "--priority", "high", check=False)
    assert proc.returncode == 2
    assert b"--reason" in proc.stdout
