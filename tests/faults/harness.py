"""Fault injection: SMTP clients send while the daemon is SIGKILLed and restarted.

Run the full campaign as a script (documented in the README)::

    .venv/bin/python -m tests.faults.harness --messages 3000 --clients 8 --kills 40

The normal test suite runs a reduced campaign (tests/faults/test_crash_campaign.py).
What the clients saw is the reference: every message that got a 250 must be stored
exactly once as a case message, with one acknowledgement queued per case.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import random
import smtplib
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from tests.support.daemon import Daemon, Site, wait_for


@dataclass
class Campaign:
    """The settings of one run."""

    messages: int = 200
    clients: int = 4
    kills: int = 3
    seed: int = 1
    settle_timeout: float = 120.0


@dataclass
class Tally:
    """What the clients saw and what the killer did."""

    accepted: set[str] = field(default_factory=set)
    attempts: int = 0
    refused_temporarily: int = 0
    kills: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_message(i: int, rng: random.Random) -> EmailMessage:
    """A distinct customer message; about a quarter reply to an earlier one by subject token."""
    msg = EmailMessage()
    sender = f"customer{rng.randrange(50)}@client{rng.randrange(10)}.example"
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = f"Fault test {i}"
    msg["Message-ID"] = email.utils.make_msgid(idstring=f"fault{i}", domain="client.example")
    msg["Date"] = email.utils.formatdate()
    msg.set_content(
        f"Message number {i}.\n" + "Some words about a problem. " * rng.randrange(1, 40)
    )
    return msg


def client(site: Site, queue: list[EmailMessage], tally: Tally, stop_at: float) -> None:
    """Send each message until it gets a 250, as an MTA would (bounded by ``stop_at``)."""
    while queue and time.monotonic() < stop_at:
        msg = queue[-1]
        with tally.lock:
            tally.attempts += 1
        try:
            with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=10) as smtp:
                smtp.send_message(msg, from_addr=msg["From"], to_addrs=["support@example.com"])
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise
            with tally.lock:
                tally.refused_temporarily += 1
            time.sleep(0.05)
            continue
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)  # the daemon is down: retry later, like an MTA
            continue
        queue.pop()
        with tally.lock:
            tally.accepted.add(str(msg["Message-ID"]))


def killer(daemon: Daemon, campaign: Campaign, tally: Tally, rng: random.Random) -> None:
    """SIGKILL the daemon at random moments and start it again, ``kills`` times.

    The kills go on after the clients are done (receiving is quick with group commit):
    processing and sending must survive them too.
    """
    for _ in range(campaign.kills):
        time.sleep(rng.uniform(0.3, 1.5))
        daemon.kill()
        tally.kills += 1
        daemon.start()


def run_campaign(root: Path, campaign: Campaign) -> dict[str, Any]:
    """Run one campaign in ``root`` and return the figures and the problems found."""
    rng = random.Random(campaign.seed)
    site = Site(root)
    # 500 senders writing several times an hour would trip the circuit breaker's
    # per-recipient limit, by design; this campaign checks delivery, so lift it.
    site.extra = "[circuit_breaker]\nper_recipient = 100000\nper_case = 100000\n"
    site.write()
    daemon = Daemon(site).start()
    tally = Tally()
    messages = [make_message(i, rng) for i in range(campaign.messages)]
    shares = [messages[i :: campaign.clients] for i in range(campaign.clients)]
    stop_at = time.monotonic() + 600
    kill_thread = threading.Thread(
        target=killer, args=(daemon, campaign, tally, random.Random(campaign.seed + 1))
    )
    kill_thread.start()
    threads = [
        threading.Thread(target=client, args=(site, share, tally, stop_at)) for share in shares
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kill_thread.join()
    settled = _settle(site, campaign.settle_timeout)
    exit_code = daemon.stop()
    report = check(site, tally)
    report.update(
        {
            "kills": tally.kills,
            "attempts": tally.attempts,
            "settled": settled,
            "exit_code": exit_code,
            "refused_temporarily": tally.refused_temporarily,
        }
    )
    return report


def _settle(site: Site, timeout: float) -> bool:
    def idle() -> bool:
        status = site.cli_json("status")
        return bool(status["inbound"]["pending"] == 0 and status["outbox"]["queued"] == 0)

    try:
        wait_for(idle, timeout=timeout, interval=0.5)
    except AssertionError:
        return False
    return True


def check(site: Site, tally: Tally) -> dict[str, Any]:
    """Compare the database and the outgoing maildir with what the clients saw."""
    db = sqlite3.connect(site.root / "cases.db")
    try:
        stored = Counter(
            mid for (mid,) in db.execute("SELECT message_id FROM messages WHERE direction='in'")
        )
        cases = db.execute("SELECT count(*) FROM cases").fetchone()[0]
        acks = Counter(cid for (cid,) in db.execute("SELECT case_id FROM outbox WHERE kind='ack'"))
        clocks = db.execute(
            "SELECT count(*) FROM cases c WHERE NOT EXISTS "
            "(SELECT 1 FROM sla_clocks k WHERE k.case_id = c.id AND k.kind = 'first')"
        ).fetchone()[0]
        pending = db.execute("SELECT count(*) FROM inbound WHERE status='received'").fetchone()[0]
        quarantined = Counter(
            reason
            for (reason,) in db.execute("SELECT reason FROM inbound WHERE status='quarantined'")
        )
        unsent = db.execute("SELECT count(*) FROM outbox WHERE status!='sent'").fetchone()[0]
    finally:
        db.close()
    delivered = Counter(_message_id(p) for p in (site.maildir / "new").iterdir())
    lost = sorted(tally.accepted - set(stored))
    return {
        "accepted": len(tally.accepted),
        "stored": sum(stored.values()),
        "lost": lost,
        "duplicates": sorted(m for m, n in stored.items() if n > 1),
        "cases": cases,
        "cases_without_one_ack": cases - sum(1 for n in acks.values() if n == 1),
        "cases_without_first_clock": clocks,
        "pending_after_settle": pending,
        "quarantined": dict(quarantined),
        "unsent_after_settle": unsent,
        "acks_delivered": sum(delivered.values()),
        "acks_delivered_twice": sum(1 for n in delivered.values() if n > 1),
    }


def _message_id(path: Path) -> str:
    with path.open("rb") as fh:
        return str(BytesHeaderParser().parse(fh)["Message-ID"])


def main() -> None:
    """Run a campaign from the command line and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--keep", type=Path, help="run in this (new) directory and keep it for a post-mortem"
    )
    args = parser.parse_args()
    campaign = Campaign(
        messages=args.messages, clients=args.clients, kills=args.kills, seed=args.seed
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        report = run_campaign(args.keep, campaign)
    else:
        with tempfile.TemporaryDirectory(prefix="m2c-faults-") as root:
            report = run_campaign(Path(root), campaign)
    lost, duplicates = report["lost"], report["duplicates"]
    assert isinstance(lost, list)
    assert isinstance(duplicates, list)
    summary = {**report, "lost": len(lost), "duplicates": len(duplicates)}
    print(json.dumps(summary, indent=2))  # noqa: T201 - the script's output


if __name__ == "__main__":
    main()
