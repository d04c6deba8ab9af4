"""The priority model learns from the team, by mail, and applies it after SIGHUP.

Agents recategorize by mail, ``priority train`` installs a model, and the daemon
classifies like the team after SIGHUP.

The team's product has a part no shipped email mentions (the "Quillon ledger sync"), and
the team treats its lag as High. The shipped model does not; after the agents' ``#priority``
corrections and a training run, a new mail about it, worded differently, opens as High.
"""

from __future__ import annotations

import email
import email.utils
import signal
import smtplib
import stat
from email.policy import default as default_policy
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.daemon import Daemon, Site, wait_for
from tests.support.mail import plain_mail
from tests.support.site_priority import LEDGER_LAGS, NEW_LEDGER_LAG

if TYPE_CHECKING:
    from email.message import EmailMessage
    from pathlib import Path

SECRET = "priority-e2e-secret-0123456789abcdef"
SUPPORT = "support@example.com"
TEAM = "team@example.com"
ALICE = "alice@team.example"
# Training fits the model six times on ~1,600 emails: ~20 s alone, minutes on a busy machine.
TRAIN_TIMEOUT = 300
pytestmark = pytest.mark.timeout(900)  # two trainings per test at most
EXTRA = f"""
[agents]
team_address = "{TEAM}"
addresses = ["{ALICE}"]
reply_secret = "{SECRET}"
"""


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A site with one agent and a reply secret (agents answer notifications by mail)."""
    s = Site(tmp_path, extra=EXTRA)
    s.write()
    return s


def send(site: Site, msg: EmailMessage) -> None:
    """Deliver over SMTP to the daemon."""
    to = email.utils.parseaddr(str(msg["To"]))[1]
    sender = email.utils.parseaddr(str(msg["From"]))[1]
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=10) as smtp:
        smtp.sendmail(sender, [to], msg.as_bytes(policy=default_policy.clone(linesep="\r\n")))


def settled(site: Site, received: int) -> None:
    """Wait until ``received`` mails are processed and the outbox is drained."""

    def done() -> bool:
        status = site.cli_json("status")
        inbound, box = status["inbound"], status["outbox"]
        return inbound["received"] == received and inbound["pending"] == 0 and not box["queued"]

    wait_for(done, timeout=60)


def customer_mail(subject: str, text: str, n: int) -> EmailMessage:
    """A customer's first mail about a problem."""
    sender = f"Customer {n} <c{n}@ledger-customer.example>"
    return plain_mail(sender, subject, f"Hello,\n\n{text}\n\nRegards,\nCustomer {n}", to=SUPPORT)


def notification_for(site: Site, ref: int) -> EmailMessage:
    """The team's notification about case ``ref``."""
    for raw in reversed(site.outgoing_messages()):
        msg = email.message_from_bytes(raw, policy=default_policy)
        if f"[#{ref}]" in str(msg["Subject"]) and TEAM in str(msg["To"]):
            return msg
    raise AssertionError(f"no notification for case {ref}")


def recategorize(notify: EmailMessage, command: str) -> EmailMessage:
    """An agent's answer to a notification: a command and nothing for the customer."""
    return plain_mail(
        f"Alice Agent <{ALICE}>",
        "Re: " + str(notify["Subject"]),
        f"{command}\n#internal\nRecategorized after the call with the customer.\n",
        to=str(notify["Reply-To"]),
        In_Reply_To=str(notify["Message-ID"]),
    )


def cases_by_subject(site: Site) -> dict[str, dict[str, Any]]:
    """The queue, by subject."""
    return {c["subject"]: c for c in site.cli_json("cases", "list")}


def test_agents_teach_the_model_by_mail_and_sighup_applies_it(site: Site) -> None:
    """Before: the shipped model disagrees with the team. After train and SIGHUP: it agrees."""
    daemon = Daemon(site).start()
    try:
        for n, (subject, text) in enumerate(LEDGER_LAGS):
            send(site, customer_mail(subject, text, n))
        settled(site, len(LEDGER_LAGS))
        before = cases_by_subject(site)
        wrong = [s for s, _ in LEDGER_LAGS if before[s]["priority"] != "high"]
        assert len(wrong) >= len(LEDGER_LAGS) // 2
        for subject, _ in LEDGER_LAGS:
            ref = int(before[subject]["ref"])
            notify = notification_for(site, ref)
            send(site, recategorize(notify, "#priority high ledger lag stops our customers' close"))
        settled(site, 2 * len(LEDGER_LAGS))
        assert all(c["priority"] == "high" for c in site.cli_json("cases", "list"))

        trained = site.cli_json("priority", "train", timeout=TRAIN_TIMEOUT)
        assert trained["installed"] is True
        # A '#priority high' on a case already High changes nothing and teaches nothing.
        assert (trained["site_examples"], trained["site_corrected"]) == (len(wrong), len(wrong))
        assert trained["examples"] > len(LEDGER_LAGS)
        assert trained["accuracy_after"] > trained["accuracy_before"]

        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: [
                e
                for e in daemon.log_events()
                if e["event"] == "priority.model" and e["source"].startswith("installed #")
            ]
        )
        send(site, customer_mail(*NEW_LEDGER_LAG, 99))
        settled(site, 2 * len(LEDGER_LAGS) + 1)
        new_case = cases_by_subject(site)[NEW_LEDGER_LAG[0]]
        assert new_case["priority"] == "high"
        shown = site.cli_json("cases", "show", str(new_case["ref"]))
        assert "quillon" in shown["priority_reason"].lower()
    finally:
        assert daemon.stop() == 0


def ingest(site: Site, subject: str, text: str, n: int) -> int:
    """``mail2case ingest`` one customer mail; its case ref."""
    raw = customer_mail(subject, text, n).as_bytes()
    site.cli("ingest", stdin=raw)
    return max(int(c["ref"]) for c in site.cli_json("cases", "list"))


def test_train_without_labels_installs_nothing(site: Site) -> None:
    """No recategorization yet: nothing to learn, and the shipped model still decides."""
    ingest(site, *LEDGER_LAGS[0], 0)
    trained = site.cli_json("priority", "train", timeout=TRAIN_TIMEOUT)
    assert trained["installed"] is False
    assert (trained["site_examples"], trained["accuracy_before"]) == (0, None)
    assert trained["model_before"] == "shipped"


def test_train_then_retrain_scores_the_installed_model_fairly(site: Site) -> None:
    """The second run compares against the installed model, refit without each fold."""
    for n, (subject, text) in enumerate(LEDGER_LAGS[:5]):
        ref = ingest(site, subject, text, n)
        site.cli("cases", "update", str(ref), "--priority", "high", "--reason", "team policy")
    first = site.cli_json("priority", "train", timeout=TRAIN_TIMEOUT)
    assert (first["installed"], first["installed_as"]) == (True, "installed #1")
    second = site.cli_json("priority", "train", timeout=TRAIN_TIMEOUT)
    assert second["model_before"] == "installed #1"
    assert second["accuracy_before"] == second["accuracy_after"]
    verdict = site.cli_json("explain", _write(site, NEW_LEDGER_LAG))
    assert verdict["priority"] == "high"
    assert 0.5 < verdict["priority_confidence"] <= 1


def test_train_writes_a_pinned_model_file_no_one_else_can_write(site: Site) -> None:
    """With ``[priority] model`` set, train replaces that file; the database keeps none."""
    for n, (subject, text) in enumerate(LEDGER_LAGS[:3]):
        ref = ingest(site, subject, text, n)
        site.cli("cases", "update", str(ref), "--priority", "high", "--reason", "team policy")
    target = site.root / "priority-model.json.gz"
    site.extra = EXTRA + f'[priority]\nmodel = "{target}"\n'
    site.write()
    # The pinned file does not exist yet: the command says so, naming the key.
    failed = site.cli("priority", "train", check=False, timeout=TRAIN_TIMEOUT)
    assert failed.returncode == 2
    assert b"priority.model: cannot read" in failed.stderr
    target.write_bytes(_shipped_model_bytes())
    target.chmod(0o644)
    trained = site.cli_json("priority", "train", "--force", timeout=TRAIN_TIMEOUT)
    assert (trained["installed"], trained["installed_as"]) == (True, f"file {target}")
    assert trained["model_before"] == f"file {target}"
    mode = target.stat().st_mode
    assert not mode & (stat.S_IWGRP | stat.S_IWOTH)
    assert site.cli_json("explain", _write(site, NEW_LEDGER_LAG))["priority"] == "high"


def _write(site: Site, subject_text: tuple[str, str]) -> str:
    path = site.root / "new.eml"
    path.write_bytes(customer_mail(*subject_text, 42).as_bytes())
    return str(path)


def _shipped_model_bytes() -> bytes:
    from ingest.priority.model import PriorityModel  # noqa: PLC0415 - the test's own reference

    return PriorityModel.shipped().to_bytes()
