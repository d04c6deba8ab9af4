"""End to end over SMTP: agents get notifications, reply by mail, give commands; no spoofing."""

from __future__ import annotations

import email
import email.utils
import smtplib
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import TYPE_CHECKING, Any

import pytest

from ingest.agents.reply_address import parse_reply_address, reply_address
from tests.support.daemon import Daemon, Site, wait_for
from tests.support.mail import plain_mail

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

SECRET = "agents-e2e-secret-0123456789abcdef"
SUPPORT = "support@example.com"
TEAM = "team@example.com"
ALICE = "alice@team.example"
CUSTOMER = "carol@customer.example"
EXTRA = f"""
[agents]
team_address = "{TEAM}"
addresses = ["{ALICE}"]
domains = ["agents.example"]
reply_secret = "{SECRET}"
max_error_mails_per_hour = 1
"""


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A site with a team address, one agent address, an agent domain and a reply secret."""
    s = Site(tmp_path, extra=EXTRA)
    s.write()
    return s


def mail(sender: str, to: str, subject: str, body: str, **headers: str) -> EmailMessage:
    """A plain text message; header names use underscores for dashes."""
    return plain_mail(sender, subject, body, to=to, domain="test.example", **headers)


def send(site: Site, msg: EmailMessage, *, rcpt: str | None = None) -> None:
    """Deliver over SMTP to the daemon; the envelope recipient defaults to the To address."""
    to = rcpt or email.utils.parseaddr(str(msg["To"]))[1]
    sender = email.utils.parseaddr(str(msg["From"]))[1]
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=10) as smtp:
        # smtplib sends bytes as given: CRLF, or a long message is one over-long line.
        smtp.sendmail(sender, [to], msg.as_bytes(policy=default_policy.clone(linesep="\r\n")))


def settled(site: Site, received: int) -> dict[str, Any]:
    """Wait until ``received`` mails are processed and the outbox is drained."""

    def done() -> dict[str, Any] | None:
        status = site.cli_json("status")
        inbound, box = status["inbound"], status["outbox"]
        ready = inbound["received"] == received and inbound["pending"] == 0
        return status if ready and box["queued"] == 0 else None

    result: dict[str, Any] = wait_for(done, timeout=30)
    return result


def outgoing(site: Site) -> list[EmailMessage]:
    """Every mail the daemon sent, oldest first."""
    return [
        email.message_from_bytes(raw, policy=default_policy) for raw in site.outgoing_messages()
    ]


def sent_to(site: Site, address: str) -> list[EmailMessage]:
    """Mails sent to ``address`` (To or Cc)."""
    found = []
    for msg in outgoing(site):
        rcpts = [a.addr_spec.lower() for h in ("To", "Cc") if msg[h] for a in msg[h].addresses]
        if address in rcpts:
            found.append(msg)
    return found


def body(msg: EmailMessage) -> str:
    """The plain-text body."""
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def show(site: Site, ref: int) -> dict[str, Any]:
    """``cases show REF --json``."""
    shown: dict[str, Any] = site.cli_json("cases", "show", str(ref))
    return shown


def event_kinds(site: Site, ref: int) -> list[str]:
    """The kinds of the case's audit events, in order."""
    return [e["kind"] for e in show(site, ref)["events"]]


def open_case(site: Site, subject: str = "Export broken", text: str = "Export fails.") -> int:
    """A customer mail opens a case; returns its ref once ack and notification are sent."""
    before = site.cli_json("status")["inbound"]["received"]
    first = mail(f"Carol Customer <{CUSTOMER}>", SUPPORT, subject, text)
    send(site, first)
    settled(site, before + 1)
    listed = site.cli_json("cases", "list")
    return max(int(c["ref"]) for c in listed)


def notification(site: Site, ref: int, to: str = TEAM) -> EmailMessage:
    """The newest notification about case ``ref`` sent to ``to``."""
    found = [m for m in sent_to(site, to) if f"[#{ref}]" in str(m["Subject"])]
    assert found, f"no notification for case {ref} to {to}"
    return found[-1]


def reply_to(
    notify: EmailMessage, text: str, sender: str = f"Alice Agent <{ALICE}>"
) -> EmailMessage:
    """An agent's answer to a notification: to its Reply-To, quoting it below."""
    quoted = "\n".join("> " + line for line in body(notify).splitlines())
    text = f"{text}\n\nOn Mon, 2 Mar 2026 at 10:00, Example Support <{SUPPORT}> wrote:\n{quoted}\n"
    return mail(
        sender,
        str(notify["Reply-To"]),
        "Re: " + str(notify["Subject"]),
        text,
        In_Reply_To=str(notify["Message-ID"]),
    )


def count_where(site: Site, predicate: Callable[[EmailMessage], bool]) -> int:
    """How many sent mails match ``predicate``."""
    return sum(1 for m in outgoing(site) if predicate(m))


def test_new_case_notifies_agents_with_signed_reply_to(site: Site, daemon: Daemon) -> None:
    """A new case tells the team the customer's text and facts; replies go to a signed address."""
    ref = open_case(site, "Export broken", "The CSV export fails with error 500.")
    notify = notification(site, ref)
    reply_addr = notify["Reply-To"].addresses[0].addr_spec
    assert parse_reply_address(reply_addr, {SUPPORT}, SECRET) == ref
    assert notify["Auto-Submitted"] == "auto-generated"
    text = body(notify)
    assert "The CSV export fails with error 500." in text
    assert CUSTOMER in text
    assert "Priority:" in text
    assert "Due:" in text
    assert len(sent_to(site, CUSTOMER)) == 1  # the acknowledgement


def test_agent_reply_is_relayed_without_history_and_moves_clocks(
    site: Site, daemon: Daemon
) -> None:
    """The customer gets the agent's new text and attachment, threaded; first response is met."""
    ref = open_case(site)
    customer_mid = next(
        m["message_id"] for m in show(site, ref)["messages"] if m["kind"] == "customer"
    )
    answer = reply_to(notification(site, ref), "Hello Carol,\n\nPlease retry now.\n\nAlice")
    answer.add_attachment(b"log line\n", maintype="text", subtype="plain", filename="fix.log")
    send(site, answer)
    settled(site, 2)
    relay = sent_to(site, CUSTOMER)[-1]
    assert relay["From"].addresses[0].display_name == "Alice Agent via Example Support"
    assert relay["From"].addresses[0].addr_spec == SUPPORT
    assert f"[#{ref}]" in relay["Subject"]
    assert relay["In-Reply-To"] == customer_mid
    assert relay["Auto-Submitted"] is None
    text = body(relay)
    assert "Please retry now." in text
    assert "wrote:" not in text
    assert "> " not in text
    assert [a.get_filename() for a in relay.iter_attachments()] == ["fix.log"]
    shown = show(site, ref)
    assert shown["first_responded_at"] is not None
    assert shown["next_update_due"] is not None
    (stored,) = [m for m in shown["messages"] if m["kind"] == "agent"]
    assert (stored["direction"], stored["message_id"]) == ("out", relay["Message-ID"])


def test_priority_assign_and_status_commands(site: Site, daemon: Daemon) -> None:
    """#priority, #assign and #status apply with who and why; later notices go to the owner."""
    ref = open_case(site)
    commands = "#priority low how-to question\n#assign bob@agents.example\n#status pending\n"
    send(site, reply_to(notification(site, ref), commands + "Hello Carol, see the manual."))
    settled(site, 2)
    shown = show(site, ref)
    assert (shown["priority"], shown["priority_reason"]) == ("low", "how-to question")
    assert (shown["owner"], shown["status"]) == ("bob@agents.example", "pending")
    assert {"priority_changed", "owner_changed", "status_changed"} <= set(event_kinds(site, ref))
    relayed = body(sent_to(site, CUSTOMER)[-1])
    assert "see the manual" in relayed
    assert "#" not in relayed.split("---")[0]
    send(site, mail(CUSTOMER, SUPPORT, f"Re: Export broken [#{ref}]", "Thanks, one more thing."))
    settled(site, 3)
    assert show(site, ref)["status"] == "open"
    assert notification(site, ref, to="bob@agents.example")


def test_internal_note_is_not_relayed(site: Site, daemon: Daemon) -> None:
    """#internal stores a note for agents, relays nothing and meets no clock."""
    ref = open_case(site)
    send(site, reply_to(notification(site, ref), "#internal\nCustomer is on the old version."))
    settled(site, 2)
    assert len(sent_to(site, CUSTOMER)) == 1  # only the acknowledgement
    shown = show(site, ref)
    (note,) = [m for m in shown["messages"] if m["kind"] == "note"]
    assert note["text"] == "Customer is on the old version."
    assert shown["first_responded_at"] is None


def test_unknown_command_answers_agent_and_relays_nothing(site: Site, daemon: Daemon) -> None:
    """A command not understood gets the agent a short error mail; nothing else happens."""
    ref = open_case(site)
    send(site, reply_to(notification(site, ref), "#status done\nAll fixed."))
    settled(site, 2)
    (error,) = sent_to(site, ALICE)
    assert "#status must be one of" in body(error)
    assert error["Auto-Submitted"] == "auto-replied"
    assert len(sent_to(site, CUSTOMER)) == 1
    assert show(site, ref)["status"] == "open"
    assert "commands_rejected" in event_kinds(site, ref)


def test_a_command_below_the_text_holds_the_reply(site: Site, daemon: Daemon) -> None:
    """'#status pending' under the answer: the customer reads nothing, the agent is told."""
    ref = open_case(site)
    answer = "Hello Carol,\n\nwe are on it.\n\n#status pending"
    send(site, reply_to(notification(site, ref), answer))
    settled(site, 2)
    assert len(sent_to(site, CUSTOMER)) == 1  # the acknowledgement only
    (error,) = sent_to(site, ALICE)
    assert "#status pending" in body(error)
    assert "commands go at the top" in body(error)
    assert show(site, ref)["status"] == "open"


def test_spoofed_agent_without_signature_is_suspicious(site: Site, daemon: Daemon) -> None:
    """An agent From on mail to the plain support address is flagged and has no authority."""
    ref = open_case(site)
    spoof = mail(f"Alice Agent <{ALICE}>", SUPPORT, f"Re: [#{ref}]", "#status closed\nClosed!")
    send(site, spoof)
    settled(site, 2)
    shown = show(site, ref)
    assert shown["status"] == "open"
    assert shown["first_responded_at"] is None
    assert "suspicious" in event_kinds(site, ref)
    assert len(sent_to(site, CUSTOMER)) == 1


def test_valid_signature_from_non_agent_is_suspicious(site: Site, daemon: Daemon) -> None:
    """A stranger who got hold of a signed reply address gains no agent authority."""
    ref = open_case(site)
    leaked = reply_to(notification(site, ref), "#status solved\nDone.", sender="eve@evil.example")
    send(site, leaked)
    settled(site, 2)
    shown = show(site, ref)
    assert shown["status"] == "open"
    (event,) = [e for e in shown["events"] if e["kind"] == "suspicious"]
    assert "non-agent" in event["detail"]
    assert len(sent_to(site, CUSTOMER)) == 1


def test_signature_for_another_case_is_refused(site: Site, daemon: Daemon) -> None:
    """A signature copied onto another case number verifies for neither case."""
    first = open_case(site, "First", "First problem.")
    second = open_case(site, "Second", "Second problem.")
    signed_first = reply_address(SUPPORT, first, SECRET)
    forged = signed_first.replace(f"+{first}-", f"+{second}-")
    msg = mail(f"Alice Agent <{ALICE}>", forged, f"Re: [#{second}]", "#status closed\nBye.")
    send(site, msg)
    settled(site, 3)
    assert show(site, second)["status"] == "open"
    assert "suspicious" in event_kinds(site, second)
    assert len(sent_to(site, CUSTOMER)) == 2  # the two acknowledgements


def test_out_of_office_agent_loop_stops_after_one_exchange(site: Site, daemon: Daemon) -> None:
    """An agent's auto-responder is never answered, and a headerless one gets one error mail."""
    ref = open_case(site)
    notify = notification(site, ref)
    away = mail(
        f"Alice Agent <{ALICE}>", str(notify["Reply-To"]), "Out of office", "I am away.",
        Auto_Submitted="auto-replied",
    )  # fmt: skip
    send(site, away)
    settled(site, 2)
    assert sent_to(site, ALICE) == []
    assert "auto_reply" in event_kinds(site, ref)
    # A responder without RFC 3834 headers, answering every mail it gets with a '#' line:
    received = 2
    for _ in range(3):
        send(
            site,
            mail(f"Alice Agent <{ALICE}>", str(notify["Reply-To"]), "Away", "#away\nback soon"),
        )
        received += 1
        settled(site, received)
    assert len(sent_to(site, ALICE)) == 1
    assert len(sent_to(site, CUSTOMER)) == 1


def test_customer_reply_to_relay_threads_and_reopens(site: Site, daemon: Daemon) -> None:
    """The customer's answer to a relayed 'solved' reply joins the case and reopens it."""
    ref = open_case(site)
    send(site, reply_to(notification(site, ref), "#status solved\nFixed in 2.1."))
    settled(site, 2)
    assert show(site, ref)["status"] == "solved"
    relay = sent_to(site, CUSTOMER)[-1]
    again = mail(
        CUSTOMER, SUPPORT, "Re: " + str(relay["Subject"]), "Still broken.",
        In_Reply_To=str(relay["Message-ID"]),
    )  # fmt: skip
    send(site, again)
    settled(site, 3)
    assert len(site.cli_json("cases", "list")) == 1
    shown = show(site, ref)
    assert shown["status"] == "open"
    assert shown["messages"][-1]["text"].strip() == "Still broken."
    assert "Still broken." in body(notification(site, ref))


AUTHENTICATED = 'require_authentication = true\ntrusted_authserv_ids = ["mx.example.com"]\n'
PASSED = "mx.example.com; dkim=pass header.d=team.example"


def test_agent_opens_case_for_customer(tmp_path: Path) -> None:
    """#customer as the first line opens a case for that customer, who gets the text, no ack.

    Only from mail a trusted border MTA authenticated; the team hears of it.
    """
    site = Site(tmp_path, extra=EXTRA + AUTHENTICATED)
    site.write()
    daemon = Daemon(site).start()
    try:
        opening = mail(
            f"Alice Agent <{ALICE}>", SUPPORT, "Your licence renewal",
            "#customer Dan <dan@customer.example>\nHello Dan,\n\nyour licence expires soon.",
            Authentication_Results=PASSED,
        )  # fmt: skip
        send(site, opening)
        settled(site, 1)
        check_opened_for_dan(site)
    finally:
        assert daemon.stop() == 0


def check_opened_for_dan(site: Site) -> None:
    """The case is Dan's, Dan got the text, Alice nothing, and the team was told who did it."""
    (case,) = site.cli_json("cases", "list")
    assert case["customer"] == "dan@customer.example"
    (relay,) = sent_to(site, "dan@customer.example")
    assert body(relay).startswith("Hello Dan,")
    assert "#customer" not in body(relay)
    assert sent_to(site, ALICE) == []
    assert show(site, int(case["ref"]))["first_responded_at"] is not None
    told = body(notification(site, int(case["ref"])))
    assert f"Opened by: {ALICE}" in told


def ingest_site(tmp_path: Path, extra: str) -> Site:
    """A site driven through ``mail2case ingest`` only (no daemon, nothing sent)."""
    s = Site(tmp_path, extra=EXTRA.replace("max_error_mails_per_hour = 1\n", "") + extra)
    s.write()
    s.cli("ingest", stdin=mail(CUSTOMER, SUPPORT, "Export broken", "Export fails.").as_bytes())
    return s


def signed_reply(site: Site, text: str, **headers: str) -> bytes:
    """An agent's mail to case 1000's signed reply address."""
    to = reply_address(SUPPORT, 1000, SECRET)
    return mail(f"Alice Agent <{ALICE}>", to, "Re: Export broken", text, **headers).as_bytes()


def test_required_authentication_needs_trusted_pass(tmp_path: Path) -> None:
    """With authentication required, only a trusted host's DKIM pass gives the agent authority."""
    site = ingest_site(
        tmp_path, 'require_authentication = true\ntrusted_authserv_ids = ["mx.example.com"]\n'
    )
    site.cli("ingest", stdin=signed_reply(site, "#status closed\nNo header."))
    forged = "evil.example; dkim=pass header.d=team.example"
    site.cli("ingest", stdin=signed_reply(site, "Untrusted.", Authentication_Results=forged))
    shown = show(site, 1000)
    assert [e["kind"] for e in shown["events"]].count("suspicious") == 2
    assert (shown["status"], shown["first_responded_at"]) == ("open", None)
    passed = "mx.example.com; dkim=pass header.d=team.example; dmarc=pass"
    site.cli("ingest", stdin=signed_reply(site, "Answer.", Authentication_Results=passed))
    assert show(site, 1000)["first_responded_at"] is not None


def test_relays_per_hour_are_limited(tmp_path: Path) -> None:
    """Past max_relays_per_hour an agent's further replies on the case are held, not relayed."""
    site = ingest_site(tmp_path, "max_relays_per_hour = 1\n")
    site.cli("ingest", stdin=signed_reply(site, "First answer."))
    site.cli("ingest", stdin=signed_reply(site, "Second answer."))
    kinds = [r["kind"] for r in site.cli_json("outbox", "list")]
    assert kinds.count("relay") == 1
    shown = show(site, 1000)
    assert "rate_limited" in [e["kind"] for e in shown["events"]]
    assert [m["kind"] for m in shown["messages"]].count("rejected") == 1


def test_a_relay_without_a_display_name_takes_the_name_the_team_gave(tmp_path: Path) -> None:
    """[agents] names: "Alice Example via Support", not "alice via Support"."""
    site = ingest_site(tmp_path, f'names = {{ "{ALICE}" = "Alice Example" }}\n')
    to = reply_address(SUPPORT, 1000, SECRET)
    bare = mail(ALICE, to, "Re: Export broken", "Fixed now.")  # no display name
    site.cli("ingest", stdin=bare.as_bytes())
    (relay,) = [r for r in site.cli_json("outbox", "list") if r["kind"] == "relay"]
    assert relay["from_name"] == "Alice Example via Example Support"
