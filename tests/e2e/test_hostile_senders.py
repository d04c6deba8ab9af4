"""Attacks from a hostile sender, replayed over SMTP against the daemon (issue: hostile sender).

Each test is one attack that once worked, sent as the attacker would; it asserts that
the attack no longer does what it did, and that a genuine user is not hurt by the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.e2e.test_spine import cases_of, customer_mail, send
from tests.support.daemon import Daemon, Site, wait_for

if TYPE_CHECKING:
    from pathlib import Path


def settled(site: Site, processed: int) -> None:
    """Wait until ``processed`` messages are settled and nothing is pending."""

    def done() -> bool:
        status = site.cli_json("status")
        inbound = status["inbound"]
        return bool(inbound["pending"] == 0 and inbound["processed"] >= processed)

    wait_for(done, timeout=30)


def test_a_null_reverse_path_is_never_answered(tmp_path: Path) -> None:
    """RFC 5321 4.5.5: ``MAIL FROM:<>`` gets no acknowledgement, however human it looks."""
    site = Site(tmp_path)
    site.write()
    d = Daemon(site).start()
    try:
        for n in range(3):
            send(site, customer_mail(f"Help {n}", "Our export fails."), mail_from="")
        send(site, customer_mail("Real customer", "Our import fails."))
        settled(site, 4)
        wait_for(lambda: len(site.outgoing_messages()) >= 1)
        outgoing = site.outgoing_messages()
        assert len(outgoing) == 1
        assert b"Real customer" in outgoing[0]
        assert [c["subject"] for c in cases_of(site)] == ["Real customer"]
    finally:
        assert d.stop() == 0
