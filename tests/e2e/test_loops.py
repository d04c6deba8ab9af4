"""A loop between the daemon and an autoresponder stops after at most one automatic message."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import TYPE_CHECKING

from tests.e2e.test_spine import cases_of, customer_mail, send
from tests.support.daemon import Daemon, Site, wait_for

if TYPE_CHECKING:
    from pathlib import Path


def robot_reply(to_ack: EmailMessage, n: int, *, polite: bool) -> EmailMessage:
    """An autoresponder's answer to our acknowledgement (RFC 3834-headed or not)."""
    headers = {"Auto_Submitted": "auto-replied"} if polite else {}
    reply = customer_mail(f"Automatic reply: {to_ack['Subject']}", f"I am away ({n}).", **headers)
    reply["In-Reply-To"] = to_ack["Message-ID"]
    reply["References"] = to_ack["Message-ID"]
    return reply


def run_loop(tmp_path: Path, *, polite: bool) -> tuple[int, int]:
    """Let an autoresponder answer each of our mails, five rounds; return (mails sent, cases)."""
    site = Site(tmp_path)
    site.write()
    d = Daemon(site).start()
    try:
        send(site, customer_mail("Help", "Our export fails."))
        for n in range(5):
            ours = wait_for(site.outgoing_messages)
            last = email.message_from_bytes(ours[-1], policy=default_policy)
            send(site, robot_reply(last, n, polite=polite))
            wait_for(lambda: site.cli_json("status")["inbound"]["pending"] == 0)
        return len(site.outgoing_messages()), len(cases_of(site))
    finally:
        assert d.stop() == 0


def test_polite_autoresponder_gets_one_message(tmp_path: Path) -> None:
    """An RFC 3834 autoresponder replying to our acknowledgement gets nothing more."""
    assert run_loop(tmp_path, polite=True) == (1, 1)


def test_rude_autoresponder_gets_one_message(tmp_path: Path) -> None:
    """A robot without Auto-Submitted that answers our mail threads onto the case; no new ack."""
    assert run_loop(tmp_path, polite=False) == (1, 1)
