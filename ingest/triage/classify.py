"""Decide what a parsed message is: a customer's or agent's mail, or automatic mail.

The order of the checks matters (``classify``): a loop is stopped before anything else
looks at the message; a bounce is recognised before its ``Auto-Submitted: auto-replied``
(which Exim and some carriers put on every bounce) could make it an auto-reply; reports,
then auto-replies and generated notices, then lists, then people.

**Other systems' generated notices** (decided for issue 18). Mail that another system
generates on its own, not in answer to a person: ``Auto-Submitted: auto-generated``
(RFC 3834; JIRA, monitoring, and Zendesk even on its agents' replies),
``X-ServiceNow-Generated``, ``X-JIRA-FingerPrint``. All of it is ``Kind.AUTO_REPLY``
with the header as the reason, like a vacation reply:

- it is never acknowledged (RFC 3834 section 2: no automatic answer to automatic mail;
  two helpdesks acknowledging each other is the ping-pong to avoid);
- it is recorded on the case it threads onto (by its references or the case token), so
  a ticket system's update on a case we share is kept with the case;
- it opens a new case only when ``processing.auto_reply_opens_case`` is set: the one
  switch for auto-replies and generated notices, so ServiceNow and JIRA act alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from ingest.mime.header_text import header_addresses
from ingest.triage.auto_replies import auto_reply_reason, auto_submitted
from ingest.triage.delivery_reports import Bounce, find_bounce, is_challenge_response
from ingest.triage.feedback_reports import feedback_reason
from ingest.triage.lists import is_our_list, list_reason
from ingest.triage.machine_reports import machine_report_reason

if TYPE_CHECKING:
    from collections.abc import Collection

    from ingest.mime.parsed import ParsedMail
    from ingest.triage.delivery_reports import BounceFinding

__all__ = [
    "Bounce",
    "Classification",
    "ClassifySettings",
    "Kind",
    "classify",
    "classify_delivery",
    "is_our_address",
]


class Kind(StrEnum):
    """What a message is, as far as acknowledging and relaying are concerned."""

    CUSTOMER = "customer"
    AGENT = "agent"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    FEEDBACK_REPORT = "feedback_report"
    LIST = "list"
    LOOP = "loop"


@dataclass(frozen=True, slots=True)
class Classification:
    """The kind of a message and the human-readable signal that decided it."""

    kind: Kind
    reason: str
    bounce: Bounce | None = None

    @property
    def is_automatic(self) -> bool:
        """True for mail written by software: it is recorded but never acknowledged."""
        return self.kind not in {Kind.CUSTOMER, Kind.AGENT}


@dataclass(frozen=True, slots=True)
class ClassifySettings:
    """Who we are and who our agents are; addresses and domains compare case-insensitively."""

    own_addresses: frozenset[str]
    own_domains_message_id: frozenset[str]
    agent_addresses: frozenset[str]
    agent_domains: frozenset[str]
    loop_header: str = "X-Loop"


def classify(
    mail: ParsedMail, settings: ClassifySettings, *, null_sender: bool = False
) -> Classification:
    """Classify ``mail``: loop, bounce, feedback report, auto-reply, list, agent or customer.

    ``null_sender`` says the envelope's reverse-path was null, which makes a notice from
    delivery software a bounce (RFC 5321 4.5.5). See the module docstring for the order.
    """
    challenge = is_challenge_response(mail)
    finding = None if challenge else find_bounce(mail, null_sender=null_sender)
    via_list = list_reason(mail)
    automatic = auto_reply_reason(mail, is_list=via_list is not None) or machine_report_reason(mail)
    loop = _loop_reason(mail, settings, is_bounce=finding is not None, automatic=automatic)
    if loop is not None:
        return Classification(Kind.LOOP, loop)
    verdict = _report_classification(mail, finding)
    if verdict is not None:
        return verdict
    if automatic is not None:
        return Classification(Kind.AUTO_REPLY, automatic)
    if challenge:
        return Classification(Kind.AUTO_REPLY, "challenge-response: sender verification")
    if via_list is not None and not is_our_list(mail, settings.own_addresses):
        return Classification(Kind.LIST, via_list)
    return _person_classification(mail, settings)


def classify_delivery(
    mail: ParsedMail, settings: ClassifySettings, *, null_sender: bool = False
) -> Classification:
    """``classify`` plus the envelope: a null reverse-path is never a person to answer.

    RFC 5321 4.5.5: mail with an empty reverse-path (``MAIL FROM:<>``, kept by MTAs
    as ``Return-Path: <>``) is a notification and must not be replied to.
    """
    verdict = classify(mail, settings, null_sender=null_sender)
    if verdict.is_automatic:
        return verdict
    if null_sender or (mail.header("Return-Path") or "").strip() == "<>":
        return Classification(Kind.AUTO_REPLY, "empty return path (<>)")
    return verdict


def _report_classification(
    mail: ParsedMail, finding: BounceFinding | None
) -> Classification | None:
    """A bounce or a feedback report, or None when ``mail`` is neither."""
    if finding is not None and not _is_labelled_delay_warning(mail, finding):
        return Classification(Kind.BOUNCE, finding.reason, finding.bounce)
    report = feedback_reason(mail)
    return None if report is None else Classification(Kind.FEEDBACK_REPORT, report)


def _person_classification(mail: ParsedMail, settings: ClassifySettings) -> Classification:
    """An agent's mail, or (by default) a customer's."""
    sender = mail.from_
    if sender is not None and _names_several_senders(mail):
        # RFC 5322 3.6.2: several authors. Authority is one person's; none is an agent.
        return Classification(Kind.CUSTOMER, "several From addresses: none is taken as an agent")
    if sender is not None and sender.key in _lowered(settings.agent_addresses):
        return Classification(Kind.AGENT, f"agent address {sender.key}")
    if sender is not None and sender.domain in _lowered(settings.agent_domains):
        return Classification(Kind.AGENT, f"agent domain {sender.domain}")
    return Classification(Kind.CUSTOMER, "no automatic signal")


def _is_labelled_delay_warning(mail: ParsedMail, finding: BounceFinding) -> bool:
    """A non-standard delay warning that labels itself auto-submitted is an auto-reply.

    Nothing failed yet ("no action is required"), and the MTA said what the message
    is; unlabelled delay warnings, every final failure (labelled or not: Exim labels
    its bounces auto-replied) and every RFC 3464 report stay bounces, so that the
    failed or delayed recipient is still recorded.
    """
    return (
        not finding.is_dsn and not finding.bounce.is_permanent and auto_submitted(mail) is not None
    )


def _loop_reason(
    mail: ParsedMail, settings: ClassifySettings, *, is_bounce: bool, automatic: str | None
) -> str | None:
    """Name the evidence that ``mail`` is our own mail or a robot answering our robot."""
    own = _lowered(settings.own_addresses)
    for value in mail.header_all(settings.loop_header):
        # Whole addresses: "customer-support@..." names someone else, not support@.
        if any(is_our_address(a, own) for a in header_addresses(value)):
            return f"{settings.loop_header.lower()}={value.strip()}"
    if mail.from_ is not None and mail.from_.key in own:
        return f"from our own address {mail.from_.key}"
    # A customer's normal reply carries our Message-ID too; only automatic mail answering
    # our mail is a loop. A bounce is never answered, so it is kept as a bounce.
    ours = _our_reference(mail, _lowered(settings.own_domains_message_id))
    if ours is None or is_bounce or automatic is None:
        return None
    return f"automatic reply to our {ours}: {automatic}"


def _our_reference(mail: ParsedMail, domains: frozenset[str]) -> str | None:
    """The first of our Message-IDs in In-Reply-To or References, or None."""
    for message_id in (*mail.in_reply_to, *mail.references):
        domain = message_id.strip("<>").rpartition("@")[2].lower()
        if any(domain == d or domain.endswith("." + d) for d in domains):
            return message_id
    return None


def _lowered(values: frozenset[str]) -> frozenset[str]:
    return frozenset(v.strip().lower() for v in values)


def is_our_address(address: str, own: Collection[str]) -> bool:
    """Whether ``address`` is one of ``own`` (lower-case), plus-extensions included.

    ``support+1042-sig@x`` is ours when ``support@x`` is: the one rule for the SMTP
    listener (no relay), loops and acknowledgements.
    """
    key = address.strip().lower()
    local, _, domain = key.rpartition("@")
    return key in own or f"{local.partition('+')[0]}@{domain}" in own


def _names_several_senders(mail: ParsedMail) -> bool:
    values = mail.header_all("From")
    return len(values) > 1 or sum(len(header_addresses(v)) for v in values) > 1
