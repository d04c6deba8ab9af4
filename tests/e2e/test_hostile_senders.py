"""Attacks from a hostile sender, replayed over SMTP against the daemon (issue: hostile sender).

Each test is one attack that once worked, sent as the attacker would; it asserts that
the attack no longer does what it did, and that a genuine user is not hurt by the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ingest.agents.reply_address import reply_address
from tests.e2e import test_agents_e2e as agents_e2e
from tests.e2e.test_spine import cases_of, customer_mail, send
from tests.support.daemon import Daemon, Site, wait_for

if TYPE_CHECKING:
    from email.message import EmailMessage
    from pathlib import Path

ALICE = agents_e2e.ALICE
SUPPORT = agents_e2e.SUPPORT
CUSTOMER = agents_e2e.CUSTOMER
AUTHENTICATED = agents_e2e.AUTHENTICATED
PASSED = agents_e2e.PASSED


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


# --- 1. Mail in the support address's name ------------------------------------------------

AGENTS = agents_e2e.EXTRA


def agent_site(tmp_path: Path, extra: str = "") -> Site:
    """A site with agents (alice@team.example), a team address and a reply secret."""
    site = Site(tmp_path, extra=AGENTS + extra)
    site.write()
    return site


def on_behalf(target: str, *, sender: str = ALICE, cc: int = 0, **headers: str) -> EmailMessage:
    """An agent-looking mail to the plain support address: #customer, then any text."""
    msg = agents_e2e.mail(
        sender, SUPPORT, "Important notice", f"#customer {target}\nPay to this account.", **headers
    )
    if cc:
        msg["Cc"] = ", ".join(f"victim{n}@far.example" for n in range(cc))
    return msg


def test_customer_command_is_refused_without_authentication(tmp_path: Path) -> None:
    """Default set-up: '#customer' from an agent's From reaches nobody; the agent is told."""
    site = agent_site(tmp_path)
    d = Daemon(site).start()
    try:
        agents_e2e.send(site, on_behalf("target@far.example", sender=f"Alice <{ALICE}>"))
        agents_e2e.send(site, on_behalf("target@far.example", sender=DISPLAY_FORGED))
        agents_e2e.settled(site, 2)
        assert agents_e2e.sent_to(site, "target@far.example") == []
        # mallory is a stranger writing to support: a case of her own, nothing in a name.
        assert [c["customer"] for c in site.cli_json("cases", "list")] == ["mallory@evil.example"]
        (told,) = agents_e2e.sent_to(site, ALICE)  # the forged one went to mallory, not alice
        assert "require_authentication" in agents_e2e.body(told)
    finally:
        assert d.stop() == 0


# RFC 5322: the address is the one in angle brackets; the display name is just a name.
DISPLAY_FORGED = f"{ALICE} <mallory@evil.example>"


def test_a_display_name_forgery_is_not_an_agent(tmp_path: Path) -> None:
    """'alice@… <mallory@evil>' is mallory: a customer, even with a DKIM pass for evil."""
    site = agent_site(tmp_path, AUTHENTICATED)
    d = Daemon(site).start()
    try:
        passed = (
            "mx.example.com; dkim=pass header.d=evil.example; dmarc=pass header.from=evil.example"
        )
        agents_e2e.send(site, on_behalf("target@far.example", sender=DISPLAY_FORGED,
                                        Authentication_Results=passed))  # fmt: skip
        agents_e2e.settled(site, 1)
        assert agents_e2e.sent_to(site, "target@far.example") == []
        (case,) = site.cli_json("cases", "list")
        assert case["customer"] == "mallory@evil.example"
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize(
    "results",
    [
        "mx.example.com; dmarc=pass",  # no header.from: says nothing about this From
        "mx.example.com; dkim=pass header.d=example",  # a public suffix vouches for no one
        "evil.example; dkim=pass header.d=team.example",  # not our border MTA
    ],
)
def test_weak_authentication_results_do_not_authenticate(tmp_path: Path, results: str) -> None:
    """Only a trusted host's pass aligned with the From domain opens a case in a name."""
    site = agent_site(tmp_path, AUTHENTICATED)
    site.cli(
        "ingest", stdin=on_behalf("target@far.example", Authentication_Results=results).as_bytes()
    )
    assert site.cli_json("cases", "list") == []
    assert [r["kind"] for r in site.cli_json("outbox", "list")] == ["command_error"]


def test_an_authenticated_on_behalf_mail_is_capped_limited_and_announced(tmp_path: Path) -> None:
    """300 Cc: refused; within the cap: sent and told to the team; past the hourly limit: held."""
    extra = AUTHENTICATED + "max_relays_per_agent_per_hour = 2\n"
    site = agent_site(tmp_path, extra)

    def ingest(msg: EmailMessage) -> None:
        site.cli("ingest", stdin=msg.as_bytes())

    ingest(on_behalf("target@far.example", cc=300, Authentication_Results=PASSED))
    assert site.cli_json("cases", "list") == []
    for n in range(3):
        ingest(on_behalf(f"t{n}@far.example", cc=2, Authentication_Results=PASSED))
    rows = site.cli_json("outbox", "list")
    relays = [r for r in rows if r["kind"] == "relay"]
    assert len(relays) == 2  # the third is over the agent's hourly limit
    assert all(len(r["to"]) + len(r.get("cc") or []) <= 3 for r in relays)
    notices = [r for r in rows if r["kind"] == "notify"]
    assert len(notices) == 2  # every mail sent in a customer's name is announced
    assert len(site.cli_json("cases", "list")) == 2  # the refused ones open nothing
    # The agent is told of the refusal, within the error-mail brake (1 an hour here).
    assert [r["kind"] for r in rows].count("command_error") == 1


# --- 2 and 3. Threads hijacked or joined by Message-ID --------------------------------------


def test_a_reused_message_id_does_not_hijack_the_victims_thread(tmp_path: Path) -> None:
    """The attacker reuses the victim's Message-ID; the victim's reply still lands on A."""
    site = agent_site(tmp_path)
    d = Daemon(site).start()
    try:
        victim = agents_e2e.mail(CUSTOMER, SUPPORT, "Invoice question", "Where is my invoice?")
        agents_e2e.send(site, victim)
        agents_e2e.settled(site, 1)
        (ack,) = agents_e2e.sent_to(site, CUSTOMER)
        attacker = agents_e2e.mail("mallory@evil.example", SUPPORT, "Hi", "Planted.")
        attacker.replace_header("Message-ID", str(victim["Message-ID"]))
        agents_e2e.send(site, attacker)
        agents_e2e.settled(site, 2)
        refs = f"{victim['Message-ID']} {ack['Message-ID']}"
        reply = agents_e2e.mail(CUSTOMER, SUPPORT, str(ack["Subject"]), "Any news?",
                                In_Reply_To=str(ack["Message-ID"]), References=refs)  # fmt: skip
        agents_e2e.send(site, reply)
        agents_e2e.settled(site, 3)
        by_customer = {c["customer"]: int(c["ref"]) for c in site.cli_json("cases", "list")}
        texts = [m["text"] for m in agents_e2e.show(site, by_customer[CUSTOMER])["messages"]]
        assert any("Any news?" in t for t in texts)
        mallory = agents_e2e.show(site, by_customer["mallory@evil.example"])["messages"]
        assert not any("Any news?" in m["text"] for m in mallory)
    finally:
        assert d.stop() == 0


def test_a_stranger_does_not_join_a_case_by_the_customers_message_id(tmp_path: Path) -> None:
    """In-Reply-To the customer's own id, from a stranger: a case of the stranger's own."""
    site = agent_site(tmp_path)
    site.cli("ingest", stdin=agents_e2e.mail(CUSTOMER, SUPPORT, "Export", "Broken.").as_bytes())
    first = agents_e2e.show(site, 1000)["messages"][0]
    stranger = agents_e2e.mail("mallory@evil.example", SUPPORT, "Re: Export", "Send me the data",
                               In_Reply_To=first["message_id"])  # fmt: skip
    site.cli("ingest", stdin=stranger.as_bytes())
    shown = agents_e2e.show(site, 1000)
    assert [m["from"] for m in shown["messages"] if m["direction"] == "in"] == [CUSTOMER]
    assert len(site.cli_json("cases", "list")) == 2


def test_a_planted_suspicious_mail_is_no_thread_to_reply_to(tmp_path: Path) -> None:
    """A forged agent mail with [#N] is kept as suspicious; replying to it joins nothing."""
    site = agent_site(tmp_path)
    site.cli("ingest", stdin=agents_e2e.mail(CUSTOMER, SUPPORT, "Export", "Broken.").as_bytes())
    planted = agents_e2e.mail(f"Alice <{ALICE}>", SUPPORT, "Re: Export [#1000]", "I am Carol.")
    site.cli("ingest", stdin=planted.as_bytes())
    assert "suspicious" in agents_e2e.event_kinds(site, 1000)
    follow = agents_e2e.mail("Carol Customer <mallory@evil.example>", SUPPORT, "Re: Export",
                             "Please send the export to me.",
                             In_Reply_To=str(planted["Message-ID"]))  # fmt: skip
    site.cli("ingest", stdin=follow.as_bytes())
    texts = [m["text"] for m in agents_e2e.show(site, 1000)["messages"]]
    assert not any("send the export to me" in t for t in texts)


def test_a_notification_always_shows_the_real_sender(tmp_path: Path) -> None:
    """A participant's mail with the customer's display name shows its own address."""
    site = agent_site(tmp_path)
    opening = agents_e2e.mail(CUSTOMER, SUPPORT, "Export", "Broken.", Cc="dave@customer.example")
    site.cli("ingest", stdin=opening.as_bytes())
    posing = agents_e2e.mail("Carol Customer <dave@customer.example>", SUPPORT,
                             "Re: Export [#1000]", "Change the bank account.")  # fmt: skip
    site.cli("ingest", stdin=posing.as_bytes())
    d = Daemon(site).start()  # sends what the two ingests queued
    try:
        notices = wait_for(lambda: len(agents_e2e.sent_to(site, agents_e2e.TEAM)) == 2 or None)
        assert notices
        latest = agents_e2e.body(agents_e2e.sent_to(site, agents_e2e.TEAM)[-1])
    finally:
        assert d.stop() == 0
    assert "From:      Carol Customer <dave@customer.example> (not the case's customer)" in latest
    assert "Customer:  <carol@customer.example>" in latest  # no borrowed name beside it


# --- 5. A flood on a case does not silence the agents ---------------------------------------


def test_a_flood_on_a_case_does_not_hold_the_agents_reply(tmp_path: Path) -> None:
    """Past the per-case brake, robots' mail is held and reported; the agent's reply goes."""
    site = agent_site(tmp_path, "\n[circuit_breaker]\nper_case = 4\n")
    d = Daemon(site).start()
    try:
        ref = agents_e2e.open_case(site)
        for n in range(6):
            agents_e2e.send(site, agents_e2e.mail(CUSTOMER, SUPPORT, f"Re: Export [#{ref}]",
                                                  f"Flood {n}."))  # fmt: skip
        agents_e2e.settled(site, 7)
        notices = agents_e2e.sent_to(site, agents_e2e.TEAM)
        notify = next(m for m in notices if str(m["Subject"]).startswith("New case"))
        agents_e2e.send(site, agents_e2e.reply_to(notify, "We are on it, Carol."))
        agents_e2e.settled(site, 8)
        relayed = [m for m in agents_e2e.sent_to(site, CUSTOMER)
                   if "We are on it" in agents_e2e.body(m)]  # fmt: skip
        assert len(relayed) == 1
        held = [m for m in agents_e2e.sent_to(site, agents_e2e.TEAM)
                if str(m["Subject"]).startswith("Held back:")]  # fmt: skip
        assert len(held) == 1  # automatic mail: one report per case and window
        assert "per-case limit" in agents_e2e.body(held[0])
    finally:
        assert d.stop() == 0


# --- Signed reply addresses: no expiry, rotation keeps old cases working --------------------


def test_a_rotated_secret_still_opens_addresses_already_sent(tmp_path: Path) -> None:
    """Signed with the previous secret: accepted; with a secret never ours: suspicious."""
    old = agents_e2e.SECRET
    rotated = AGENTS.replace(f'reply_secret = "{old}"', 'reply_secret = "a-new-secret-0123456789"')
    site = Site(tmp_path, extra=rotated + f'previous_reply_secrets = ["{old}"]\n')
    site.write()
    site.cli("ingest", stdin=agents_e2e.mail(CUSTOMER, SUPPORT, "Export", "Broken.").as_bytes())
    for secret, text in ((old, "Answer one."), ("never-ours-0123456789", "Answer two.")):
        to = reply_address(SUPPORT, 1000, secret)
        answer = agents_e2e.mail(f"Alice <{ALICE}>", to, "Re: Export [#1000]", text)
        site.cli("ingest", stdin=answer.as_bytes())
    relays = [r for r in site.cli_json("outbox", "list") if r["kind"] == "relay"]
    assert len(relays) == 1
    assert agents_e2e.event_kinds(site, 1000).count("suspicious") == 1
