"""Auto-replies that RFC 3834 headers miss, and other systems' notices (issue 18, 5 and 7)."""

from __future__ import annotations

import pytest

from ingest.mime.parse import parse_message
from ingest.triage.classify import Classification, ClassifySettings, Kind, classify

SETTINGS = ClassifySettings(
    own_addresses=frozenset({"support@example.com"}),
    own_domains_message_id=frozenset({"mail2case.example.com"}),
    agent_addresses=frozenset(),
    agent_domains=frozenset(),
)


def run(
    headers: str, body: str = "Hello,\n\nplease help.\n", subject: str = "Help"
) -> Classification:
    """Classify a mail from carol@customer.test with extra ``headers``."""
    extra = headers.strip() + "\n" if headers.strip() else ""
    text = (
        f"From: Carol <carol@customer.test>\nTo: support@example.com\nSubject: {subject}\n"
        f"Message-ID: <m1@customer.test>\n{extra}\n{body}"
    )
    return classify(parse_message(text.encode()), SETTINGS)


def test_apple_icloud_vacation_header_is_an_auto_reply() -> None:
    """Apple iCloud marks its vacation replies with X-Apple-Action: VACATION."""
    result = run("X-Apple-Action: VACATION", subject="Re: Help")
    assert result.kind is Kind.AUTO_REPLY
    assert result.reason == "x-apple-action=VACATION"


def test_other_apple_action_values_are_no_signal() -> None:
    """Only the vacation value marks an auto-reply."""
    assert run("X-Apple-Action: forward").kind is Kind.CUSTOMER


@pytest.mark.parametrize(
    "prefix",
    [
        "Automatic reply:",
        "Automatische Antwort:",
        "Réponse automatique :",
        "Respuesta automática:",
        "Risposta automatica:",
        "Resposta automática:",
        "Automatisch antwoord:",
        "Automatiskt svar:",
        "Automatisk svar:",
        "Autosvar:",
        "Automaattinen vastaus:",
        "Odpowiedź automatyczna:",
        "Automatická odpověď:",
        "Automatikus válasz:",
        "Răspuns automat:",
        "Otomatik yan\u0131t:",
        "Автоматический ответ:",
        "Αυτόματη απάντηση:",
        "自動応答:",
        "自动回复:",
        "自動回覆:",
        "자동 회신:",
    ],
)
def test_localized_exchange_prefix_with_an_absence_body_is_an_auto_reply(prefix: str) -> None:
    """Exchange's localized subject prefix plus a body that opens as an absence notice."""
    body = "I am currently out of the office and will return on Monday.\n"
    result = run("", body=body, subject=f"{prefix} Help")
    assert result.kind is Kind.AUTO_REPLY, result.reason
    assert "auto-reply subject" in result.reason


@pytest.mark.parametrize("prefix", ["Automatische Antwort:", "自動応答:"])
def test_localized_prefix_with_a_null_return_path_is_an_auto_reply(prefix: str) -> None:
    """The prefix with the null return path Exchange sends its replies from."""
    assert run("Return-Path: <>", subject=f"{prefix} Help").kind is Kind.AUTO_REPLY


@pytest.mark.parametrize(
    "subject",
    ["Automatic reply: Help", "Re: Automatic reply: Help", "Fwd: Automatische Antwort: x"],
)
def test_prefix_alone_is_a_customer(subject: str) -> None:
    """A subject alone never decides: customers forward and answer auto-replies."""
    assert run("X-Auto-Response-Suppress: All", subject=subject).kind is Kind.CUSTOMER


def test_request_tracker_autoreply_is_an_auto_reply() -> None:
    """RT's AutoReply (its ticket headers, no Precedence or Auto-Submitted) is automatic."""
    headers = (
        "RT-Ticket: rt.vendor.test #4711\nManaged-BY: RT 5.0.5 (https://bestpractical.com)\n"
        "X-RT-Loop-Prevention: rt.vendor.test"
    )
    body = (
        "Greetings,\n\nThis message has been automatically generated in response to the\n"
        'creation of a trouble ticket regarding:\n\t"Help"\n'
    )
    result = run(headers, body=body, subject="[rt.vendor.test #4711] AutoReply: Help")
    assert result.kind is Kind.AUTO_REPLY
    assert "ticket system (rt-ticket)" in result.reason


def test_bug_tracker_acknowledgement_is_an_auto_reply() -> None:
    """A tracker's 'thank you for submitting' acknowledgement with its tracker header."""
    result = run(
        "X-Bugzilla-Type: new",
        body="Thank you for submitting your report.\n",
        subject="Thank you for submitting bug 123",
    )
    assert result.kind is Kind.AUTO_REPLY


def test_agent_reply_relayed_by_another_helpdesk_is_a_customer() -> None:
    """A person's reply sent through another helpdesk carries its headers but no claim."""
    body = "Hi,\n\nwe checked the logs and the printer works again.\n"
    result = run("X-RT-Loop-Prevention: rt.vendor.test", body=body, subject="Re: Help")
    assert result.kind is Kind.CUSTOMER


def test_x_loop_naming_its_own_sender_is_an_auto_reply() -> None:
    """A robot stamps its own address in X-Loop (the Debian bug tracker does)."""
    text = (
        "From: owner@bugs.example.org (Bug Tracking System)\nTo: support@example.com\n"
        "Subject: Bug#123: Acknowledgement (Help)\nX-Loop: owner@bugs.example.org\n\n"
        "Thank you for filing a new bug report.\n"
    )
    result = classify(parse_message(text.encode()), SETTINGS)
    assert result.kind is Kind.AUTO_REPLY
    assert result.reason == "x-loop names its own sender (owner@bugs.example.org)"


def test_foreign_x_loop_with_an_acknowledgement_subject_is_an_auto_reply() -> None:
    """A foreign X-Loop is evidence that turns an acknowledgement subject into a verdict."""
    result = run("X-Loop: helpdesk@vendor.test", subject="We have received your request")
    assert result.kind is Kind.AUTO_REPLY
    assert run("X-Loop: helpdesk@vendor.test", subject="Help").kind is Kind.CUSTOMER


@pytest.mark.parametrize(
    ("sender", "subject", "body"),
    [
        ("users+owner@groups.example.net", "Post denied", "You are not allowed to post.\n"),
        ("owner-users@lists.example.net", "Rejected posting", "Your message was rejected.\n"),
        ("users-bounces@lists.example.net", "Your message to Users awaits moderator approval", ""),
    ],
)
def test_list_moderation_notice_is_an_auto_reply(sender: str, subject: str, body: str) -> None:
    """A list robot's notice about our post (moderation, rejection) is automatic."""
    text = f"From: {sender}\nTo: support@example.com\nSubject: {subject}\n\n{body}"
    result = classify(parse_message(text.encode()), SETTINGS)
    assert result.kind is Kind.AUTO_REPLY
    assert result.reason.startswith("mailing-list notice from")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("Auto-Submitted: auto-generated", "auto-submitted=auto-generated"),
        ("X-ServiceNow-Generated: true", "x-servicenow-generated=true"),
        ("X-JIRA-FingerPrint: 0123abcd", "x-jira-fingerprint=0123abcd"),
    ],
)
def test_generated_notices_are_all_handled_alike(headers: str, reason: str) -> None:
    """Other systems' generated notices (class 7) are all auto-replies: never acknowledged."""
    result = run(headers, subject="Incident INC0012345 has been updated")
    assert result.kind is Kind.AUTO_REPLY
    assert result.reason == reason
    assert result.is_automatic


def test_servicenow_header_set_to_false_is_no_signal() -> None:
    """X-ServiceNow-Generated: false says a person wrote it."""
    assert run("X-ServiceNow-Generated: false").kind is Kind.CUSTOMER
