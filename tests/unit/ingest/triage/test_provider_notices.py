"""Amazon SES bounce and complaint notifications delivered by SNS email (issue 18, class 3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.mime.parse import parse_message
from ingest.triage.classify import Classification, ClassifySettings, Kind, classify

SETTINGS = ClassifySettings(
    own_addresses=frozenset({"support@example.com"}),
    own_domains_message_id=frozenset({"mail2case.example.com"}),
    agent_addresses=frozenset(),
    agent_domains=frozenset(),
)
SNS_HEADERS = (
    "From: AWS Notifications <no-reply@sns.amazonaws.com>\n"
    "To: ops@example.com\n"
    "Subject: AWS Notification Message\n"
    "X-Amz-Sns-Message-Id: 0b1a5f3c-0000-4000-8000-000000000001\n"
    "X-Amz-Sns-Subscription-Arn: arn:aws:sns:eu-west-1:111122223333:ses-notices:abc\n"
)
FOOTER = (
    "\n--\nIf you wish to stop receiving notifications from this topic, please click or "
    "visit the link below to unsubscribe:\nhttps://sns.eu-west-1.amazonaws.com/unsubscribe\n"
)
MAIL = {
    "timestamp": "2024-04-01T10:00:00.000Z",
    "source": "support@example.com",
    "messageId": "0102018e9d4c5a6b-00000000-0000-0000-0000-000000000000-000000",
    "destination": ["carol@customer.test"],
    "commonHeaders": {"messageId": "<ack-1@mail2case.example.com>", "subject": "[#1042]"},
}


def bounce(bounce_type: str, status: str, diagnostic: str) -> dict[str, Any]:
    """An SES bounce notification (the documented notification contents)."""
    recipient = {
        "emailAddress": "carol@customer.test",
        "action": "failed",
        "status": status,
        "diagnosticCode": diagnostic,
    }
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [recipient],
            "timestamp": "2024-04-01T10:00:01.000Z",
            "feedbackId": "0102018e9d4c5a6b-feedback",
            "reportingMTA": "dsn; a1-2.smtp-out.eu-west-1.amazonses.com",
        },
        "mail": MAIL,
    }


COMPLAINT = {
    "notificationType": "Complaint",
    "complaint": {
        "complainedRecipients": [{"emailAddress": "carol@customer.test"}],
        "timestamp": "2024-04-01T10:05:00.000Z",
        "feedbackId": "0102018e9d4c5a6b-complaint",
        "complaintFeedbackType": "abuse",
    },
    "mail": MAIL,
}


def by_email(payload: dict[str, Any]) -> Classification:
    """SNS protocol 'email': the notification JSON, then SNS's unsubscribe footer."""
    text = SNS_HEADERS + "\n" + json.dumps(payload) + "\n" + FOOTER
    return classify(parse_message(text.encode()), SETTINGS)


def by_email_json(payload: dict[str, Any]) -> Classification:
    """SNS protocol 'email-json': SNS's envelope whose Message holds the notification."""
    envelope = {
        "Type": "Notification",
        "MessageId": "0b1a5f3c-0000-4000-8000-000000000001",
        "TopicArn": "arn:aws:sns:eu-west-1:111122223333:ses-notices",
        "Message": json.dumps(payload),
        "Timestamp": "2024-04-01T10:00:02.000Z",
    }
    text = SNS_HEADERS + "\n" + json.dumps(envelope, indent=2) + "\n"
    return classify(parse_message(text.encode()), SETTINGS)


@pytest.mark.parametrize("deliver", [by_email, by_email_json])
def test_ses_permanent_bounce_is_a_bounce_with_recipient(deliver: Any) -> None:
    """A permanent SES bounce names the recipient, status, diagnostic and our message."""
    result = deliver(bounce("Permanent", "5.1.1", "smtp; 550 5.1.1 user unknown"))
    assert result.kind is Kind.BOUNCE
    assert result.bounce is not None
    assert result.bounce.recipient == "carol@customer.test"
    assert result.bounce.status == "5.1.1"
    assert result.bounce.diagnostic == "550 5.1.1 user unknown"
    assert result.bounce.original_message_id == "<ack-1@mail2case.example.com>"
    assert result.bounce.is_permanent
    assert result.reason.startswith("amazon ses bounce: 5.1.1")


def test_ses_transient_bounce_is_not_permanent() -> None:
    """A Transient SES bounce (a full mailbox) is recorded but not permanent."""
    result = by_email(bounce("Transient", "4.2.2", "smtp; 452 4.2.2 mailbox full"))
    assert result.kind is Kind.BOUNCE
    assert result.bounce is not None
    assert not result.bounce.is_permanent


@pytest.mark.parametrize("deliver", [by_email, by_email_json])
def test_ses_complaint_is_a_feedback_report(deliver: Any) -> None:
    """An SES complaint is a feedback report naming the complaining recipient."""
    result = deliver(COMPLAINT)
    assert result.kind is Kind.FEEDBACK_REPORT
    assert result.reason == "amazon ses complaint: abuse from carol@customer.test"
    assert result.bounce is None


def test_event_publishing_event_type_is_read_too() -> None:
    """SES event publishing names the kind in eventType instead of notificationType."""
    payload = bounce("Permanent", "5.1.1", "smtp; 550 user unknown")
    payload["eventType"] = payload.pop("notificationType")
    assert by_email(payload).kind is Kind.BOUNCE


def test_delivery_notification_is_not_a_bounce() -> None:
    """A Delivery notification reports success: automatic, but neither bounce nor report."""
    payload = {"notificationType": "Delivery", "delivery": {"recipients": ["c@x.test"]}}
    assert by_email(payload).kind not in {Kind.BOUNCE, Kind.FEEDBACK_REPORT}


def test_customer_pasting_ses_json_is_a_customer() -> None:
    """Only SNS's mail is read as a notification: a customer's pasted JSON is a question."""
    payload = json.dumps(bounce("Permanent", "5.1.1", "smtp; 550 user unknown"))
    text = f"From: Dave <dave@shop.test>\nTo: support@example.com\nSubject: Help\n\n{payload}\n"
    assert classify(parse_message(text.encode()), SETTINGS).kind is Kind.CUSTOMER


def test_broken_json_from_sns_is_not_a_bounce() -> None:
    """Truncated JSON from SNS is no notification (and does not raise)."""
    text = SNS_HEADERS + '\n{"notificationType": "Bounce", "bounce": {\n'
    assert classify(parse_message(text.encode()), SETTINGS).kind is not Kind.BOUNCE
