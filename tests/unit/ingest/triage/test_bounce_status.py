"""Bounce details: status from the diagnostic text, recipient fallbacks (issue 18, class 14)."""

from __future__ import annotations

import pytest

from ingest.mime.parse import parse_message
from ingest.triage.bounce_status import status_from_text
from ingest.triage.classify import ClassifySettings, Kind, classify

SETTINGS = ClassifySettings(
    own_addresses=frozenset({"support@example.com"}),
    own_domains_message_id=frozenset({"mail2case.example.com"}),
    agent_addresses=frozenset(),
    agent_domains=frozenset(),
)


@pytest.mark.parametrize(
    ("text", "is_permanent", "expected"),
    [
        ("550 5.1.1 <carol@customer.test>: user unknown", True, "5.1.1"),
        ("Unrouteable address", True, "5.1.2"),
        ('unrouteable mail domain "customer.test"', True, "5.1.2"),
        ("Host or domain name not found. Name service error", True, "5.1.2"),
        ("550 <carol@customer.test>... User unknown", True, "5.1.1"),
        ("552 Recipient address rejected: Mailbox full", True, "5.2.2"),
        ("452 mailbox is full", True, "4.2.2"),
        ("mailbox is full (quota exceeded)", False, "4.2.2"),
        ("552 message size exceeds fixed maximum message size", True, "5.3.4"),
        ("account has been disabled", True, "5.2.1"),
        ('Too many "Received" headers - suspected mail loop', True, "5.4.6"),
        ("retry timeout exceeded", True, "5.4.7"),
        ("554 Relay access denied", True, "5.7.1"),
        ("554 rejected for an unspecified reason", True, "5.0.0"),
        ("451 temporary local problem", True, "4.0.0"),
        ("call 555-1234 for help", True, None),
        ("see 10.1.1.5 for details", True, None),
        ("no reason given", True, None),
    ],
)
def test_status_from_text(text: str, *, is_permanent: bool, expected: str | None) -> None:
    """A quoted code wins; a known wording gets its RFC 3463 code; a bare reply its class."""
    assert status_from_text(text, is_permanent=is_permanent) == expected


DSN = """\
From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>
To: support@example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.test

{fields}

--B--
"""


@pytest.mark.parametrize(
    ("fields", "recipient"),
    [
        ("Final-Recipient: system; <>\nOriginal-Recipient: rfc822; carol@customer.test", "carol"),
        ("Final-Recipient: rfc822; <>\nOriginal-Recipient: rfc822;carol@customer.test", "carol"),
        (
            "Final-Recipient: x-unix; carol\nOriginal-Recipient: rfc822; carol@customer.test",
            "carol",
        ),
        (
            "Final-Recipient: rfc822; dave@customer.test\nX-Actual-Recipient: rfc822; x@y.test",
            "dave",
        ),
    ],
)
def test_unusable_final_recipient_falls_back_to_original(fields: str, recipient: str) -> None:
    """A Final-Recipient naming no mailbox falls back to Original-Recipient."""
    text = DSN.format(fields=f"{fields}\nAction: failed\nStatus: 5.1.1")
    result = classify(parse_message(text.encode()), SETTINGS)
    assert result.kind is Kind.BOUNCE
    assert result.bounce is not None
    assert result.bounce.recipient == f"{recipient}@customer.test"


def test_missing_status_is_read_from_the_diagnostic_code() -> None:
    """Without a Status field, the Diagnostic-Code's wording gives the status."""
    fields = (
        "Final-Recipient: rfc822; carol@customer.test\nAction: failed\n"
        'Diagnostic-Code: X-Exim; unrouteable mail domain "customer.test"'
    )
    result = classify(parse_message(DSN.format(fields=fields).encode()), SETTINGS)
    assert result.bounce is not None
    assert result.bounce.status == "5.1.2"
    assert result.bounce.is_permanent
    assert result.reason.startswith("dsn: 5.1.2 unrouteable mail domain")


def test_transient_diagnostic_without_status_is_not_permanent() -> None:
    """A 4xx diagnostic with no Status field makes a transient failure."""
    fields = (
        "Final-Recipient: rfc822; carol@customer.test\nAction: failed\n"
        "Diagnostic-Code: smtp; 452 mailbox is full"
    )
    result = classify(parse_message(DSN.format(fields=fields).encode()), SETTINGS)
    assert result.bounce is not None
    assert result.bounce.status == "4.2.2"
    assert not result.bounce.is_permanent
