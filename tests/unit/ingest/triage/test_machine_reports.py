"""Reports software sends about mail: automatic, never a failure, never a customer."""

from __future__ import annotations

import pytest

from ingest.mime.parse import parse_message
from ingest.triage.classify import Classification, ClassifySettings, Kind, classify
from ingest.triage.delivery_reports import find_bounce

SETTINGS = ClassifySettings(
    own_addresses=frozenset({"support@example.com"}),
    own_domains_message_id=frozenset({"mail2case.example.com"}),
    agent_addresses=frozenset(),
    agent_domains=frozenset(),
)
HEADERS = "From: {sender}\nTo: support@example.com\nSubject: {subject}\nMessage-ID: <r1@x.test>\n"


def run(text: str) -> Classification:
    """Parse and classify ``text``."""
    return classify(parse_message(text.encode()), SETTINGS)


def dsn(*actions: tuple[str, str]) -> str:
    """A multipart/report delivery-status message with one group per (action, status)."""
    groups = "".join(
        f"\nFinal-Recipient: rfc822; r{i}@customer.test\nAction: {action}\nStatus: {status}\n"
        for i, (action, status) in enumerate(actions)
    )
    return (
        HEADERS.format(sender="postmaster@mx.customer.test", subject="Delivery Status Notification")
        + "MIME-Version: 1.0\n"
        + 'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        + "--B\nContent-Type: text/plain\n\nA report.\n"
        + "--B\nContent-Type: message/delivery-status\n\n"
        + f"Reporting-MTA: dns; mx.customer.test\n{groups}"
        + "--B--\n"
    )


@pytest.mark.parametrize("action", ["delivered", "relayed", "expanded"])
def test_a_report_of_success_is_automatic_and_no_bounce(action: str) -> None:
    """RFC 3464 2.3.3: nothing failed, so no recipient is recorded as bouncing."""
    text = dsn((action, "2.0.0"), ("delivered", "2.0.0"))
    result = run(text)
    assert result.kind is Kind.AUTO_REPLY
    assert result.bounce is None
    assert "delivery report without a failure" in result.reason
    assert find_bounce(parse_message(text.encode())) is None


@pytest.mark.parametrize(("action", "status"), [("failed", "5.1.1"), ("delayed", "4.4.1")])
def test_one_failed_or_delayed_recipient_among_delivered_ones_is_a_bounce(
    action: str, status: str
) -> None:
    """A success beside a failure must not hide the failure (the attacker's mix)."""
    result = run(dsn(("delivered", "2.0.0"), (action, status)))
    assert result.kind is Kind.BOUNCE
    assert result.bounce is not None
    assert result.bounce.recipient == "r1@customer.test"


def test_a_recipient_group_without_an_action_is_not_read_as_success() -> None:
    """A group that says nothing of its fate leaves the report a bounce, as before."""
    text = dsn(("delivered", "2.0.0")).replace(
        "--B--", "\nFinal-Recipient: rfc822; x@y.test\nStatus: 5.1.1\n--B--"
    )
    assert run(text).kind is Kind.BOUNCE


def test_a_read_receipt_is_automatic_even_from_a_customer_address() -> None:
    """RFC 8098: the customer clicked 'send receipt'; that asks for no acknowledgement."""
    text = (
        HEADERS.format(sender="Kim <kim@customer.test>", subject="Read: your request")
        + "MIME-Version: 1.0\nContent-Type: multipart/report;"
        + ' report-type=disposition-notification; boundary="B"\n\n'
        + "--B\nContent-Type: text/plain\n\nThe message was displayed.\n"
        + "--B\nContent-Type: message/disposition-notification\n\n"
        + "Final-Recipient: rfc822;kim@customer.test\n"
        + "Disposition: manual-action/MDN-sent-manually; displayed\n"
        + "--B--\n"
    )
    result = run(text)
    assert result.kind is Kind.AUTO_REPLY
    assert "RFC 8098" in result.reason


def test_an_smtp_tls_report_is_automatic_by_its_required_headers_alone() -> None:
    """RFC 8460 5.3 requires TLS-Report-Domain and TLS-Report-Submitter."""
    text = (
        HEADERS.format(sender="tlsrpt@mailbox.test", subject="Report Domain: example.com")
        + "TLS-Report-Domain: example.com\nTLS-Report-Submitter: mailbox.test\n\nsee attached\n"
    )
    assert run(text).kind is Kind.AUTO_REPLY


DMARC_SUBJECT = "Report Domain: example.com Submitter: mailbox.test Report-ID: 42"
DMARC_FILE = "mailbox.test!example.com!1774310400!1774396799.xml.gz"


def with_file(subject: str, filename: str, text: str = "") -> str:
    """A multipart/mixed mail with one gzip attachment named ``filename``."""
    return (
        HEADERS.format(sender="noreply-dmarc@mailbox.test", subject=subject)
        + 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n'
        + f"--B\nContent-Type: text/plain\n\n{text}\n"
        + "--B\nContent-Type: application/gzip\n"
        + f'Content-Disposition: attachment; filename="{filename}"\n'
        + "Content-Transfer-Encoding: base64\n\nH4sIAAAAAAAAA0tMTgYAqGxnGAIAAAA=\n--B--\n"
    )


def test_a_dmarc_aggregate_report_is_automatic() -> None:
    """RFC 7489 7.2.1.1: its subject and its attachment's name, both."""
    result = run(with_file(DMARC_SUBJECT, DMARC_FILE))
    assert result.kind is Kind.AUTO_REPLY
    assert "RFC 7489" in result.reason


@pytest.mark.parametrize(
    ("subject", "filename"),
    [
        (f"Fwd: {DMARC_SUBJECT}", DMARC_FILE),  # a customer asking what it means
        (DMARC_SUBJECT, "report.xml.gz"),  # the subject alone
        ("What is this report?", DMARC_FILE),  # the file alone
    ],
)
def test_half_a_dmarc_report_is_a_customer(subject: str, filename: str) -> None:
    """Either signal alone is a claim a person can make; a person gets an answer."""
    result = run(with_file(subject, filename, text="Can you tell me what this means?"))
    assert result.kind is Kind.CUSTOMER
