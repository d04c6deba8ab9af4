"""Recognise delivery failure reports (RFC 3464 DSNs and the common non-standard bounces)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ingest.mime.parsed import ParsedMail

__all__ = ["Bounce", "BounceFinding", "find_bounce", "is_challenge_response", "report_type"]


@dataclass(frozen=True, slots=True)
class Bounce:
    """What a delivery report says about the failed recipient; any field may be unknown."""

    recipient: str | None
    status: str | None
    diagnostic: str | None
    action: str | None
    original_message_id: str | None
    is_permanent: bool


# Local parts that only delivery software sends from (RFC 5321 section 4.5.1, common MTAs).
_SYSTEM_LOCAL_PARTS = frozenset(
    {"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster", "mdaemon", "mailadm"}
)
_SYSTEM_NAME = re.compile(r"mail delivery (system|subsystem|service)|post ?office", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered mail|returned mail|mail delivery (failed|failure|problem)|"
    r"delivery (status notification|failure|failed|has failed|report|notification)|"
    r"failure notice|delivery error|non-?delivery|returned to sender|mail not delivered|"
    r"failed mail|mail system error|permanent delivery failure|mail failed|"
    r"error during delivery|delayed mail|message delayed|could not send message|"
    r"warning: message .* delayed|processing error",
    re.IGNORECASE,
)
# Opening lines of the notices written by the big MTAs (qmail, Exim, Postfix, Sendmail,
# Exchange, Gmail, Domino, GroupWise); each is specific to delivery software.
_BOUNCE_BODY = re.compile(
    r"this is the qmail-send program|"
    r"this message was created automatically by mail delivery software|"
    r"this is the mail system at host|"
    r"the following addresses? had permanent fatal errors|"
    r"delivery to the following recipients? failed|"
    r"delivery has failed to these recipients|"
    r"your message did not reach some or all of the intended recipients|"
    r"could not be delivered to one or more recipients|"
    r"i'm sorry to have to inform you that your message could not|"
    r"could not be delivered|undeliverable message|non-delivery report|"
    r"^-+ ?failed recipients ?-+|"
    r"^\s*<[^>\s]+@[^>\s]+>:\s*(\n\s*)?(host\s.*said:|.*(unknown|does not exist|not found))|"
    r"has not yet been delivered|delivery failure|unable to deliver|"
    r"permanent fatal errors|user unknown|no such (user|mailbox)",
    re.IGNORECASE | re.MULTILINE,
)
_DELAY = re.compile(
    r"has not yet been delivered|delayed|still being retried|will (continue to )?retry|"
    r"could not send message for past|no action is required",
    re.IGNORECASE,
)
# Challenge-response filters ask the sender to prove they are human; they are automatic
# replies, not failures, even when dressed as a DSN.
_CHALLENGE = re.compile(
    r"guest list|allowed list|approved senders|sender not pre-approved|waitlisted|"
    r"verify (that )?you are (a )?human|sender verification",
    re.IGNORECASE,
)
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|rép|resp)\s*:", re.IGNORECASE)
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
# In free text a status must stand alone (not part of an IP address or version number),
# and only failure classes 4 and 5 are meaningful.
_TEXT_STATUS = re.compile(r"(?<![\d.])([45]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)")
# An SMTP reply code, with or without an enhanced status; not a phone number fragment.
_SMTP_REPLY = re.compile(r"(?<![\w.-])[45][0-5]\d(?:[ -][245]\.\d{1,3}\.\d{1,3}|[ -](?![\d-])).*")
_ADDRESS = re.compile(r"<?([A-Za-z0-9._%+=/&-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?")
# Postfix and qmail put each failed recipient at the start of a line: "<user@host>:".
_LISTED_RECIPIENT = re.compile(r"^\s*<([^<>\s]+@[^<>\s]+)>:", re.MULTILINE)
_ORIGINAL_MARKERS = re.compile(
    r"^-+ ?(original message|this is a copy of the message|the original message)|"
    r"^content-type: message/rfc822|^-+ ?below this line is a copy",
    re.IGNORECASE | re.MULTILINE,
)
_MAX_DIAGNOSTIC = 200


@dataclass(frozen=True, slots=True)
class BounceFinding:
    """A recognised bounce, the evidence as a reason, and whether it was an RFC 3464 DSN."""

    bounce: Bounce
    reason: str
    is_dsn: bool


def report_type(mail: ParsedMail) -> str | None:
    """The lower-cased ``report-type`` of a top-level multipart/report, or None."""
    content_type = mail.header("Content-Type") or ""
    if not content_type.strip().lower().startswith("multipart/report"):
        return None
    found = re.search(r"report-type\s*=\s*\"?([\w-]+)", content_type, re.IGNORECASE)
    return found.group(1).lower() if found else ""


def is_challenge_response(mail: ParsedMail) -> bool:
    """True for a challenge-response filter's reply asking the sender to verify."""
    if not _REPLY_PREFIX.match(mail.subject):
        return False
    return bool(_CHALLENGE.search(mail.text) or _CHALLENGE.search(_dsn_text(mail)))


def find_bounce(mail: ParsedMail) -> BounceFinding | None:
    """The bounce a message reports with the evidence, or None when it is no bounce."""
    dsn = _dsn_text(mail)
    if dsn or report_type(mail) == "delivery-status":
        bounce = _bounce_from_dsn(dsn, mail)
        return BounceFinding(bounce, f"dsn: {_summary(bounce)}", is_dsn=True)
    signal = _non_standard_signal(mail)
    if signal is None:
        return None
    bounce = _bounce_from_text(mail)
    return BounceFinding(bounce, f"{signal}: {_summary(bounce)}", is_dsn=False)


def _summary(bounce: Bounce) -> str:
    """A short 'status diagnostic' text for a reason line."""
    parts = [p for p in (bounce.status, bounce.diagnostic) if p]
    if not parts:
        return bounce.action or "no details"
    text = " ".join(parts)
    return text if len(text) <= _MAX_DIAGNOSTIC else text[: _MAX_DIAGNOSTIC - 1] + "…"


def _non_standard_signal(mail: ParsedMail) -> str | None:
    """Name the evidence that a message without a DSN part is a bounce, or None."""
    if mail.header("X-Failed-Recipients"):
        return "x-failed-recipients"
    subject_hit = bool(_BOUNCE_SUBJECT.search(mail.subject))
    # The body is searched only when its verdict counts: from delivery software, or
    # under a bounce subject (most mail is neither, and the search reads the whole body).
    if _is_system_sender(mail):
        return "bounce from delivery system" if subject_hit or _body_hit(mail) else None
    if subject_hit and _body_hit(mail):
        return "bounce notice"
    return None


def _body_hit(mail: ParsedMail) -> bool:
    """Whether the notice text opens like a big MTA's bounce notice."""
    return bool(_BOUNCE_BODY.search(_notice_text(mail)))


def _is_system_sender(mail: ParsedMail) -> bool:
    """True when From names delivery software (mailer-daemon, postmaster and alike)."""
    sender = mail.from_
    if sender is None:
        return (mail.header("Return-Path") or "").strip() == "<>"
    local = sender.key.partition("@")[0]
    return local in _SYSTEM_LOCAL_PARTS or bool(_SYSTEM_NAME.search(sender.name))


def _notice_text(mail: ParsedMail) -> str:
    """The human-readable notice: the body up to the returned copy of the original."""
    text = mail.text or ""
    marker = _ORIGINAL_MARKERS.search(text)
    return text[: marker.start()] if marker else text


def _bounce_from_text(mail: ParsedMail) -> Bounce:
    """Extract what a non-standard notice tells about the failure, where feasible."""
    notice = _notice_text(mail)
    failed = mail.header("X-Failed-Recipients")
    recipient = _first_address(failed) if failed else _recipient_in_notice(notice, mail)
    status_match = _TEXT_STATUS.search(notice)
    is_delay = bool(_DELAY.search(mail.subject) or _DELAY.search(notice))
    status = status_match.group(1) if status_match else None
    return Bounce(
        recipient=recipient,
        status=status,
        diagnostic=_diagnostic_in_notice(notice),
        action="delayed" if is_delay and not _is_permanent_status(status) else "failed",
        original_message_id=_original_message_id(mail),
        is_permanent=not is_delay or _is_permanent_status(status),
    )


def _recipient_in_notice(notice: str, mail: ParsedMail) -> str | None:
    """The first address in the notice that is neither the bounce's sender nor addressee."""
    listed = _LISTED_RECIPIENT.search(notice)
    if listed:
        return listed.group(1)
    own = {a.key for a in (*mail.to, *mail.cc)}
    if mail.from_ is not None:
        own.add(mail.from_.key)
    for match in _ADDRESS.finditer(notice):
        address = match.group(1).strip(".")
        local = address.lower().partition("@")[0]
        if address.lower() not in own and local not in _SYSTEM_LOCAL_PARTS:
            return address
    return None


def _diagnostic_in_notice(notice: str) -> str | None:
    """The first SMTP reply line quoted in the notice (e.g. '550 5.1.1 user unknown')."""
    for line in notice.splitlines():
        found = _SMTP_REPLY.search(line)
        if found:
            return found.group(0).strip()[:_MAX_DIAGNOSTIC]
    return None


def _is_permanent_status(status: str | None) -> bool:
    """RFC 3463: class 5 is a permanent failure."""
    return status is not None and status.startswith("5")


def _first_address(text: str) -> str | None:
    found = _ADDRESS.search(text)
    return found.group(1) if found else None


# --- RFC 3464 message/delivery-status -------------------------------------------------


def _dsn_text(mail: ParsedMail) -> str:
    """The text of the message/delivery-status part, or '' when there is none."""
    if mail.tree is not None:
        for part in _walk(mail.tree):
            if part.get_content_type() == "message/delivery-status":
                return _part_text(part)
    for attachment in mail.attachments:
        if attachment.content_type.lower() == "message/delivery-status":
            return attachment.data.decode("utf-8", "replace")
    return ""


def _walk(message: Message) -> Iterator[Message]:
    """Every part, without descending into the returned original message."""
    yield message
    # is_multipart() before get_payload(): on a leaf, get_payload() decodes with the
    # declared charset and raises ValueError for one with a NUL in it (found by fuzzing).
    if message.is_multipart() and message.get_content_maintype() == "multipart":
        for part in message.get_payload():
            if isinstance(part, Message):
                yield from _walk(part)


def _part_text(part: Message) -> str:
    """The fields of a delivery-status part as text, whether the parser split it or not."""
    if part.is_multipart():
        blocks = (
            "\n".join(f"{k}: {v}" for k, v in block.raw_items())
            for block in part.get_payload()
            if isinstance(block, Message)
        )
        return "\n\n".join(blocks)
    raw = part.get_payload(decode=True)  # decode=True never reads the declared charset
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""


def _field_groups(text: str) -> list[dict[str, str]]:
    """Split DSN text into groups of lower-cased fields (RFC 3464 section 2)."""
    groups: list[dict[str, str]] = [{}]
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            groups.append({})
            last = None
        elif line[0] in " \t" and last is not None:
            groups[-1][last] += " " + line.strip()
        else:
            name, sep, value = line.partition(":")
            if sep and name.strip() and " " not in name.strip():
                last = name.strip().lower()
                groups[-1].setdefault(last, value.strip())
    return [g for g in groups if g]


def _bounce_from_dsn(text: str, mail: ParsedMail) -> Bounce:
    """The most significant recipient of a DSN: a permanent failure before anything else."""
    recipients = [g for g in _field_groups(text) if "action" in g or "final-recipient" in g]
    chosen = min(recipients, key=_rank, default={})
    status_match = _STATUS.search(chosen.get("status", ""))
    status = status_match.group(1) if status_match else None
    action = chosen.get("action", "").split(" ")[0].lower() or None
    recipient = chosen.get("final-recipient") or chosen.get("original-recipient")
    diagnostic = _strip_type(chosen.get("diagnostic-code", "")) or None
    is_failed = action in {"failed", "failure"} or (action is None and status is not None)
    return Bounce(
        recipient=_first_address(recipient) if recipient else _fallback_recipient(mail),
        status=status,
        diagnostic=diagnostic[:_MAX_DIAGNOSTIC] if diagnostic else None,
        action=action,
        original_message_id=_original_message_id(mail),
        is_permanent=is_failed and (status is None or _is_permanent_status(status)),
    )


def _rank(group: dict[str, str]) -> int:
    action = group.get("action", "").lower()
    status = group.get("status", "")
    if action.startswith("fail"):
        return 0 if status.strip().startswith("5") else 1
    return 2 if action.startswith("delay") else 3


def _strip_type(value: str) -> str:
    """Drop the 'smtp;' / 'rfc822;' type prefix of a DSN field."""
    kind, sep, rest = value.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else value.strip()


def _fallback_recipient(mail: ParsedMail) -> str | None:
    failed = mail.header("X-Failed-Recipients")
    return _first_address(failed) if failed else None


def _original_message_id(mail: ParsedMail) -> str | None:
    """The Message-ID of the returned original (message/rfc822 or text/rfc822-headers)."""
    if mail.tree is not None:
        for part in _walk(mail.tree):
            found = _message_id_of_part(part)
            if found:
                return found
    return mail.in_reply_to[0] if mail.in_reply_to else None


def _message_id_of_part(part: Message) -> str | None:
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        payload = part.get_payload() if part.is_multipart() else []
        inner = payload[0] if isinstance(payload, list) and payload else None
        value = inner.get("Message-ID") if isinstance(inner, Message) else None
        return _normalise_id(str(value)) if value else None
    if content_type == "text/rfc822-headers":
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
        found = re.search(r"^message-id:\s*(\S+)", text, re.IGNORECASE | re.MULTILINE)
        return _normalise_id(found.group(1)) if found else None
    return None


def _normalise_id(value: str) -> str | None:
    found = re.search(r"<?([^<>\s]+@[^<>\s]+)>?", value)
    return f"<{found.group(1)}>" if found else None
