"""Bounces written as plain text, without an RFC 3464 delivery-status part.

qmail, Exim, Postfix's old notices, sendmail, Exchange, the DragonFly Mail Agent (dma)
and many carrier and ISP gateways say "could not deliver" in prose and quote or attach
the original. Two independent pieces of evidence make such a notice a bounce:

- **the sender is delivery software**: From names a system mailbox (RFC 5321 4.5.1
  postmaster, MAILER-DAEMON and the like, also as a display name with an empty
  address, as dma writes ``From: MAILER-DAEMON <>``), or the reverse-path is null
  (RFC 5321 4.5.5: notifications are sent from ``<>``), together with a bounce subject
  or any failure wording in the notice;
- or, from anyone, **a bounce subject together with an MTA's notice opening**, unless
  the subject says a person forwards or answers the notice ("Fwd: Undeliverable: ...").

The recipient, diagnostic and RFC 3463 status are read from the notice text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ingest.triage.bounce_status import status_from_text
from ingest.triage.bounces import (
    MAX_DIAGNOSTIC,
    Bounce,
    BounceFinding,
    first_address,
    original_message_id,
    summary,
)

if TYPE_CHECKING:
    from ingest.mime.parsed import ParsedMail

__all__ = ["SYSTEM_LOCAL_PARTS", "is_system_sender", "notice_finding"]

# Local parts that only delivery software sends from (RFC 5321 section 4.5.1, common MTAs).
SYSTEM_LOCAL_PARTS = frozenset(
    {"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster", "mdaemon", "mailadm"}
)
_SYSTEM_NAME = re.compile(
    r"mail delivery (system|subsystem|service|agent)|post ?office|mailer[- ]?daemon|"
    r"\bpostmaster\b|mail administrator",
    re.IGNORECASE,
)
# Subjects of bounce notices, with Exchange's localized "Undeliverable:" and the wording
# of Japanese and Chinese carriers and providers.
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered mail|returned mail|mail delivery (failed|failure|problem)|"
    r"delivery (status notification|failure|failed|has failed|report|notification)|"
    r"failure notice|delivery error|non-?delivery|returned to sender|mail not delivered|"
    r"failed mail|mail system error|permanent delivery failure|mail failed|"
    r"error during delivery|delayed mail|message delayed|could not send message|"
    r"warning: message .* delayed|processing error|"
    r"unzustellbar|non remis|no se puede entregar|non recapitabile|"
    r"não é possível entregar|onbestelbaar|olevererbart|kan ikke leveres|"
    r"niedostarczaln|nedoručiteln|kézbesíthetetlen|недостав|не удалось доставить|"
    r"配信不能|配信エラー|配信できません|送信エラー|無法傳遞|无法(投递|传递|送达)|退信",
    re.IGNORECASE,
)
# Opening lines of the notices written by the big MTAs (qmail, Exim, Postfix, Sendmail,
# Exchange, Gmail, Domino, GroupWise, dma); each is specific to delivery software.
_MTA_OPENING = re.compile(
    r"this is the qmail-send program|"
    r"this message was created automatically by mail delivery software|"
    r"this is the mail system at host|"
    r"the following addresses? had permanent fatal errors|"
    r"delivery to the following recipients? failed|"
    r"delivery has failed to these recipients|"
    r"your message did not reach some or all of the intended recipients|"
    r"could not be delivered to one or more recipients|"
    r"i'm sorry to have to inform you that your message could not|"
    r"there was an error delivering your (mail|message)|"
    r"could not be delivered|undeliverable message|non-delivery report|"
    r"^-+ ?failed recipients ?-+|"
    r"^\s*<[^>\s]+@[^>\s]+>:\s*(\n\s*)?(host\s.*said:|.*(unknown|does not exist|not found))|"
    r"has not yet been delivered|delivery failure|unable to deliver|"
    r"permanent fatal errors|user unknown|no such (user|mailbox)",
    re.IGNORECASE | re.MULTILINE,
)
# Any wording of a failed delivery: decisive only when the sender is delivery software.
_FAILURE_WORDING = re.compile(
    r"(could|can)(no|n')?t( be)? deliver|(was|were|has|have|could)(n't| not)( been| be)? "
    r"delivered|failed to deliver|error (while )?delivering|delivery (has )?failed|"
    r"permanent (error|failure)|returned to sender|not (be )?deliverable|undeliverable|"
    r"recipient address rejected|message (was )?(rejected|refused)|"
    r"配信できませんでした|送信できませんでした|届きませんでした|宛先不明|"
    r"无法(投递|传递|送达)|退信",
    re.IGNORECASE,
)
# A person forwarding or answering a notice ("Fwd: Undeliverable: ...") writes to us.
_FORWARDED = re.compile(r"^\s*(fwd?|fw|wg|tr|rv|enc|re|aw|sv|antw|vs)\s*:", re.IGNORECASE)
_DELAY = re.compile(
    r"has not yet been delivered|delayed|still being retried|will (continue to )?retry|"
    r"could not send message for past|no action is required",
    re.IGNORECASE,
)
# Words that make a notice that also mentions delays a final failure.
_FINAL = re.compile(
    r"permanent|fatal error|given up|giving up|gave up|retry timeout exceeded|"
    r"(deleted|removed) from (the )?queue",
    re.IGNORECASE,
)
# An SMTP reply code, with or without an enhanced status; not a phone number fragment.
_SMTP_REPLY = re.compile(r"(?<![\w.-])[45][0-5]\d(?:[ -][245]\.\d{1,3}\.\d{1,3}|[ -](?![\d-])).*")
_ADDRESS = r"<?([A-Za-z0-9._%+=/&-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?"
# Where notices name the failed recipient, most explicit first: DSN fields pasted as
# text, Postfix and qmail's "<user@host>:" line, "... delivering your mail to <x>".
_RECIPIENT_PATTERNS = (
    re.compile(
        rf"^\s*(?:final|original)-recipient:\s*(?:rfc822;)?\s*{_ADDRESS}",
        re.IGNORECASE | re.MULTILINE,
    ),
    re.compile(r"^\s*<([^<>\s]+@[^<>\s]+)>:", re.MULTILINE),
    re.compile(
        rf"\b(?:deliver\w*|send\w*|sent|reach|relay\w*|transmit\w*)\b[^\n<@]{{0,40}}?"
        rf"\bto:?\s*{_ADDRESS}",
        re.IGNORECASE,
    ),
    re.compile(rf"\brecipients?(?: address(?:es)?)?:?\s*{_ADDRESS}", re.IGNORECASE),
)
_ANY_ADDRESS = re.compile(_ADDRESS)
_ORIGINAL_MARKERS = re.compile(
    r"^-+ ?(original message|this is a copy of the message|the original message)|"
    r"^content-type: message/rfc822|^-+ ?below this line is a copy|"
    r"^(original message|message headers) follows?\.?\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def notice_finding(mail: ParsedMail, *, null_sender: bool = False) -> BounceFinding | None:
    """The bounce a plain-text notice reports with the evidence, or None when it is none."""
    signal = _signal(mail, null_sender=null_sender)
    if signal is None:
        return None
    bounce = _bounce(mail)
    return BounceFinding(bounce, f"{signal}: {summary(bounce)}", is_dsn=False)


def is_system_sender(mail: ParsedMail, *, null_sender: bool = False) -> bool:
    """True when From names delivery software or the reverse-path is null."""
    if null_sender or (mail.header("Return-Path") or "").strip() == "<>":
        return True
    sender = mail.from_
    if sender is None:  # "MAILER-DAEMON <>": a display name with no address
        return bool(_SYSTEM_NAME.search(mail.header("From") or ""))
    local = sender.key.partition("@")[0]
    return local in SYSTEM_LOCAL_PARTS or bool(_SYSTEM_NAME.search(sender.name))


def _signal(mail: ParsedMail, *, null_sender: bool) -> str | None:
    """Name the evidence that a message without a DSN part is a bounce, or None."""
    if mail.header("X-Failed-Recipients"):
        return "x-failed-recipients"
    subject_hit = bool(_BOUNCE_SUBJECT.search(mail.subject))
    # The body is searched only when its verdict counts: from delivery software, or
    # under a bounce subject (most mail is neither, and the search reads the whole body).
    if is_system_sender(mail, null_sender=null_sender):
        notice = notice_text(mail)
        found = subject_hit or _MTA_OPENING.search(notice) or _FAILURE_WORDING.search(notice)
        return "bounce from delivery system" if found else None
    if (
        subject_hit
        and not _FORWARDED.match(mail.subject)
        and _MTA_OPENING.search(notice_text(mail))
    ):
        return "bounce notice"
    return None


def notice_text(mail: ParsedMail) -> str:
    """The human-readable notice: the body up to the returned copy of the original."""
    text = mail.text or ""
    marker = _ORIGINAL_MARKERS.search(text)
    return text[: marker.start()] if marker else text


def _bounce(mail: ParsedMail) -> Bounce:
    """Extract what a non-standard notice tells about the failure, where feasible."""
    notice = notice_text(mail)
    failed = mail.header("X-Failed-Recipients")
    recipient = first_address(failed) if failed else _recipient_in_notice(notice, mail)
    is_delay = bool(_DELAY.search(mail.subject) or _DELAY.search(notice))
    is_delay = is_delay and not _FINAL.search(notice)
    diagnostic = _diagnostic_in_notice(notice)
    status = status_from_text(diagnostic or notice, is_permanent=not is_delay)
    if status is None and diagnostic is not None:
        status = status_from_text(notice, is_permanent=not is_delay)
    is_permanent = not is_delay or (status is not None and status.startswith("5"))
    return Bounce(
        recipient=recipient,
        status=status,
        diagnostic=diagnostic,
        action="failed" if is_permanent else "delayed",
        original_message_id=original_message_id(mail),
        is_permanent=is_permanent,
    )


def _recipient_in_notice(notice: str, mail: ParsedMail) -> str | None:
    """The failed recipient the notice names: never the bounce's sender or addressee."""
    own = {a.key for a in (*mail.to, *mail.cc)}
    if mail.from_ is not None:
        own.add(mail.from_.key)
    candidates = [m.group(1) for p in _RECIPIENT_PATTERNS for m in p.finditer(notice)]
    candidates += [m.group(1) for m in _ANY_ADDRESS.finditer(notice)]
    for found in candidates:
        address = found.strip(".")
        key = address.lower()
        if key not in own and key.partition("@")[0] not in SYSTEM_LOCAL_PARTS:
            return address
    return None


def _diagnostic_in_notice(notice: str) -> str | None:
    """The first SMTP reply line quoted in the notice (e.g. '550 5.1.1 user unknown')."""
    for line in notice.splitlines():
        found = _SMTP_REPLY.search(line)
        if found:
            return found.group(0).strip()[:MAX_DIAGNOSTIC]
    return None
