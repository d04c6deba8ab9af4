"""Recognise delivery failure reports: RFC 3464 DSNs, providers' JSON, plain-text notices.

Three kinds of evidence, tried in this order:

1. an RFC 3464 ``message/delivery-status`` part (or a ``multipart/report`` of that
   type): the recipient and status come from its per-recipient fields. A
   ``Final-Recipient`` that names no mailbox (``system;<>``, RFC 3464 2.3.2 allows any
   address type) falls back to ``Original-Recipient``, then to ``X-Failed-Recipients``;
   a missing ``Status`` is read from the ``Diagnostic-Code`` (``bounce_status``);
2. a sending provider's JSON notification (``provider_notices``: Amazon SES via SNS);
3. a plain-text notice from delivery software (``bounce_notices``).
"""

from __future__ import annotations

import re
from email.message import Message
from typing import TYPE_CHECKING

from ingest.triage.bounce_notices import notice_finding
from ingest.triage.bounce_status import status_from_text
from ingest.triage.bounces import (
    MAX_DIAGNOSTIC,
    Bounce,
    BounceFinding,
    first_address,
    original_message_id,
    summary,
    walk,
)
from ingest.triage.provider_notices import provider_notice

if TYPE_CHECKING:
    from ingest.mime.parsed import ParsedMail

__all__ = [
    "Bounce",
    "BounceFinding",
    "delivery_report_actions",
    "find_bounce",
    "is_challenge_response",
    "is_success",
    "report_type",
]


# Challenge-response filters ask the sender to prove they are human; they are automatic
# replies, not failures, even when dressed as a DSN.
_CHALLENGE = re.compile(
    r"guest list|allowed list|approved senders|sender not pre-approved|waitlisted|"
    r"verify (that )?you are (a )?human|sender verification",
    re.IGNORECASE,
)
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|rép|resp)\s*:", re.IGNORECASE)
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


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


def find_bounce(mail: ParsedMail, *, null_sender: bool = False) -> BounceFinding | None:
    """The bounce a message reports with the evidence, or None when it is no bounce.

    ``null_sender`` says the envelope's reverse-path was null (RFC 5321 4.5.5).
    """
    dsn = _dsn_text(mail)
    if dsn or report_type(mail) == "delivery-status":
        if is_success(_actions(dsn)):
            return None  # a report that everything went on (machine_reports)
        bounce = _bounce_from_dsn(dsn, mail)
        return BounceFinding(bounce, f"dsn: {summary(bounce)}", is_dsn=True)
    notice = provider_notice(mail)
    if notice is not None and notice.bounce is not None:
        return BounceFinding(notice.bounce, notice.reason, is_dsn=False)
    if notice is not None:  # a complaint, not a bounce
        return None
    return notice_finding(mail, null_sender=null_sender)


def delivery_report_actions(mail: ParsedMail) -> list[str]:
    """The ``Action`` of each recipient of an RFC 3464 report (lower case, "" if none).

    Empty when ``mail`` holds no delivery-status part.
    """
    return _actions(_dsn_text(mail))


# --- RFC 3464 message/delivery-status -------------------------------------------------

# RFC 3464 section 2.3.3: the actions that say the message went on, not that it failed.
_SUCCESS_ACTIONS = frozenset({"delivered", "relayed", "expanded"})


def _actions(dsn: str) -> list[str]:
    return [
        g.get("action", "").split(" ")[0].lower()
        for g in _field_groups(dsn)
        if "action" in g or "final-recipient" in g
    ]


def is_success(actions: list[str]) -> bool:
    """Every recipient went on; a report with no recipient group reports nothing good."""
    return bool(actions) and set(actions) <= _SUCCESS_ACTIONS


def _dsn_text(mail: ParsedMail) -> str:
    """The text of the message/delivery-status part, or '' when there is none."""
    if mail.tree is not None:
        for part in walk(mail.tree):
            if part.get_content_type() == "message/delivery-status":
                return _part_text(part)
    for attachment in mail.attachments:
        if attachment.content_type.lower() == "message/delivery-status":
            return attachment.data.decode("utf-8", "replace")
    return ""


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
    action = chosen.get("action", "").split(" ")[0].lower() or None
    diagnostic = _strip_type(chosen.get("diagnostic-code", "")) or None
    status_match = _STATUS.search(chosen.get("status", ""))
    status = status_match.group(1) if status_match else None
    if status is None and diagnostic:
        status = status_from_text(diagnostic, is_permanent=action in {"failed", "failure"})
    is_failed = action in {"failed", "failure"} or (action is None and status is not None)
    return Bounce(
        recipient=_dsn_recipient(chosen) or _fallback_recipient(mail),
        status=status,
        diagnostic=diagnostic[:MAX_DIAGNOSTIC] if diagnostic else None,
        action=action,
        original_message_id=original_message_id(mail),
        is_permanent=is_failed and (status is None or status.startswith("5")),
    )


def _dsn_recipient(group: dict[str, str]) -> str | None:
    """The first recipient field that names a mailbox (``system;<>`` and the like do not)."""
    for name in ("final-recipient", "original-recipient", "x-actual-recipient"):
        found = first_address(_strip_type(group.get(name, "")))
        if found:
            return found
    return None


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
    return first_address(failed) if failed else None
