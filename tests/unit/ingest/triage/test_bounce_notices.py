"""Plain-text bounces without a delivery-status part (issue 18, classes 1 and 2)."""

from __future__ import annotations

from email.header import Header

import pytest

from ingest.mime.parse import parse_message
from ingest.triage.classify import Classification, ClassifySettings, Kind, classify_delivery

SETTINGS = ClassifySettings(
    own_addresses=frozenset({"support@example.com"}),
    own_domains_message_id=frozenset({"mail2case.example.com"}),
    agent_addresses=frozenset(),
    agent_domains=frozenset(),
)
ORIGINAL = (
    "From: Support <support@example.com>\n"
    "To: carol@customer.test\n"
    "Subject: [#1042] We received your message\n"
    "Message-ID: <ack-1@mail2case.example.com>\n"
)


def run(text: str, *, null_sender: bool = False) -> Classification:
    """Parse ``text`` as the daemon would and classify it."""
    return classify_delivery(parse_message(text.encode()), SETTINGS, null_sender=null_sender)


def dma_bounce(reason: str) -> str:
    """A bounce in the DragonFly Mail Agent's format (dma's mail.c, bounce())."""
    return (
        "Received: from MAILER-DAEMON\n\tid 1a2b3c\n\tby relay.customer.test (DragonFly Mail"
        " Agent v0.13);\n\tMon, 01 Apr 2024 10:00:00 +0000\n"
        "X-Original-To: <carol@customer.test>\n"
        "From: MAILER-DAEMON <>\n"
        "To: support@example.com\n"
        "Subject: Mail delivery failed\n"
        "Message-Id: <1a2b3c@relay.customer.test>\n"
        "Date: Mon, 01 Apr 2024 10:00:00 +0000\n\n"
        "This is the DragonFly Mail Agent v0.13 at relay.customer.test.\n\n"
        "There was an error delivering your mail to <carol@customer.test>.\n\n"
        f"{reason}\n\n"
        "Message headers follow.\n\n" + ORIGINAL
    )


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        (
            (
                "mx.customer.test [192.0.2.25] did not like our RCPT TO:\n"
                "552 5.2.2 <carol@customer.test>: Recipient address rejected: Mailbox full"
            ),
            "5.2.2",
        ),
        (
            (
                "mx.customer.test [192.0.2.25] did not like our RCPT TO:\n"
                "550 <carol@customer.test>: Recipient address rejected: User unknown"
            ),
            "5.1.1",
        ),
        ("unable to deliver mail: host unknown", "5.1.2"),
    ],
)
def test_dma_bounce_is_a_bounce_with_recipient_and_status(reason: str, status: str) -> None:
    """The dma notice 'There was an error delivering your mail to <x>' is a bounce, status read."""
    result = run(dma_bounce(reason))
    assert result.kind is Kind.BOUNCE, result.reason
    assert result.bounce is not None
    assert result.bounce.recipient == "carol@customer.test"
    assert result.bounce.status == status
    assert result.bounce.is_permanent
    assert result.bounce.original_message_id is None  # headers are quoted, not attached


def test_gateway_notice_from_postmaster_with_null_sender_is_a_bounce() -> None:
    """A carrier gateway's 'could not deliver' from postmaster over a null envelope."""
    text = (
        "From: postmaster@gw.carrier.test\nTo: support@example.com\n"
        "Subject: Notice\n\n"
        "Your mail could not be delivered to the following address:\n"
        "  carol@customer.test\n\n--- original headers ---\n" + ORIGINAL
    )
    result = run(text, null_sender=True)
    assert result.kind is Kind.BOUNCE
    assert result.bounce is not None
    assert result.bounce.recipient == "carol@customer.test"


def test_null_envelope_alone_needs_failure_wording() -> None:
    """A null reverse-path with failure wording is a bounce; without it, a notice."""
    wording = "From: gw@carrier.test\nSubject: Info\n\nMessage to <carol@customer.test> failed"
    result = run(wording + " to deliver: 550 no such user\n", null_sender=True)
    assert result.kind is Kind.BOUNCE
    assert result.bounce is not None
    assert result.bounce.status == "5.1.1"
    chatter = run(
        "From: gw@carrier.test\nSubject: Info\n\nYour plan renews soon.\n", null_sender=True
    )
    assert chatter.kind is Kind.AUTO_REPLY
    assert chatter.reason == "empty return path (<>)"


def test_japanese_carrier_bounce_is_recognised() -> None:
    """A carrier's notice in Japanese (ISO-2022-JP) from postmaster is a bounce."""
    body = "次の宛先へのメールは配信できませんでした。\n\n<carol@customer.test>\n".encode(
        "iso2022_jp"
    )
    subject = Header("お知らせ", "iso-2022-jp").encode()
    raw = (
        f"From: postmaster@ezweb.example.jp\nTo: support@example.com\nSubject: {subject}\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-2022-JP\n\n"
    ).encode() + body
    result = classify_delivery(parse_message(raw), SETTINGS)
    assert result.kind is Kind.BOUNCE
    assert result.bounce is not None
    assert result.bounce.recipient == "carol@customer.test"


def test_exim_bounce_labelled_auto_replied_stays_a_bounce() -> None:
    """Exim labels bounces Auto-Submitted: auto-replied; the failure still wins (class 2)."""
    text = (
        "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\nTo: support@example.com\n"
        "Subject: Mail delivery failed: returning message to sender\n"
        "Auto-Submitted: auto-replied\n\n"
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        "  carol@customer.test\n    Unrouteable address\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n" + ORIGINAL
    )
    result = run(text)
    assert result.kind is Kind.BOUNCE
    assert result.bounce is not None
    assert (result.bounce.recipient, result.bounce.status) == ("carol@customer.test", "5.1.2")


def test_failure_that_mentions_retries_is_not_a_delay_warning() -> None:
    """A final failure after retries ('retry timeout exceeded') stays a permanent bounce."""
    text = (
        "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\n"
        "Subject: Mail delivery failed: returning message to sender\n"
        "Auto-Submitted: auto-replied\n\n"
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        "  carol@customer.test\n    retry timeout exceeded; the message was delayed\n"
    )
    result = run(text)
    assert result.kind is Kind.BOUNCE
    assert result.bounce is not None
    assert result.bounce.is_permanent
    assert result.bounce.status == "5.4.7"


def test_customer_forwarding_a_bounce_is_a_customer() -> None:
    """A person forwarding an Undeliverable notice to ask about it writes to support."""
    text = (
        "From: Carol <carol@customer.test>\nTo: support@example.com\n"
        "Subject: Fwd: Undeliverable: invoice\n\n"
        "Why did this bounce?\n\n---------- Forwarded message ---------\n"
        "Your message did not reach some or all of the intended recipients.\n"
    )
    assert run(text).kind is Kind.CUSTOMER


def test_customer_writing_from_a_postmaster_like_name_needs_failure_text() -> None:
    """Delivery software's name alone is not a bounce: it needs a bounce subject or text."""
    text = "From: Postmaster <postmaster@customer.test>\nSubject: DNS question\n\nHi, a question.\n"
    assert run(text).kind is Kind.CUSTOMER
