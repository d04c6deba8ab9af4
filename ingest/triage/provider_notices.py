"""Bounce and complaint notifications that sending providers deliver as JSON by email.

Amazon SES publishes bounces and complaints to an SNS topic; an email subscription gets
them from ``no-reply@sns.amazonaws.com`` (with ``X-Amz-Sns-Message-Id``), the body being
the notification JSON (protocol ``email``, followed by an unsubscribe footer) or SNS's
envelope whose ``Message`` holds it (``email-json``). The notification names its kind in
``notificationType`` (``eventType`` for SES event publishing): ``Bounce`` carries
``bounce.bouncedRecipients`` with RFC 3464-like fields, ``Complaint`` carries
``complaint.complainedRecipients``. Only mail from SNS is read this way: a customer
pasting such JSON into a question stays a customer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.triage.bounces import MAX_DIAGNOSTIC, Bounce, normalise_id

if TYPE_CHECKING:
    from ingest.mime.parsed import ParsedMail

__all__ = ["ProviderNotice", "provider_notice"]

_SNS_DOMAINS = ("sns.amazonaws.com", "amazonses.com")
_MAX_JSON_CHARS = 1_000_000  # SNS messages are at most 256 KB
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class ProviderNotice:
    """A provider's notification: a bounce (with what failed) or a complaint."""

    is_complaint: bool
    reason: str
    bounce: Bounce | None = None


def provider_notice(mail: ParsedMail) -> ProviderNotice | None:
    """The SES bounce or complaint an SNS email carries, or None for any other mail."""
    if not _is_from_sns(mail):
        return None
    payload = _notification(mail.text)
    if payload is None:
        return None
    kind = str(payload.get("notificationType") or payload.get("eventType") or "")
    if kind == "Complaint":
        return _complaint(payload)
    if kind == "Bounce":
        return _bounce(payload)
    return None


def _is_from_sns(mail: ParsedMail) -> bool:
    if mail.header("X-Amz-Sns-Message-Id") is not None:
        return True
    domain = mail.from_.domain if mail.from_ else ""
    return any(domain == d or domain.endswith("." + d) for d in _SNS_DOMAINS)


def _notification(text: str) -> dict[str, Any] | None:
    """The SES notification object in ``text``, unwrapping SNS's envelope; None if absent."""
    found = _json_object(text)
    if found is not None and found.get("Type") == "Notification":
        inner = found.get("Message")
        found = _json_object(inner) if isinstance(inner, str) else None
    return found


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` starts with (anything after it, as a footer, is ignored)."""
    start = text.lstrip()[:_MAX_JSON_CHARS]
    if not start.startswith("{"):
        return None
    try:
        value, _ = _DECODER.raw_decode(start)
    except ValueError:  # JSONDecodeError, or a number too long to convert
        return None
    return value if isinstance(value, dict) else None


def _complaint(payload: dict[str, Any]) -> ProviderNotice:
    complaint = _object(payload, "complaint")
    recipients = [_address(r) for r in _objects(complaint, "complainedRecipients")]
    feedback = str(complaint.get("complaintFeedbackType") or "complaint")
    named = next((r for r in recipients if r), None)
    about = f" from {named}" if named else ""
    return ProviderNotice(is_complaint=True, reason=f"amazon ses complaint: {feedback}{about}")


def _bounce(payload: dict[str, Any]) -> ProviderNotice:
    bounce = _object(payload, "bounce")
    recipients = _objects(bounce, "bouncedRecipients")
    first = recipients[0] if recipients else {}
    is_permanent = bounce.get("bounceType") == "Permanent"
    status = str(first.get("status") or "") or None
    diagnostic = _strip_type(str(first.get("diagnosticCode") or "")) or None
    found = Bounce(
        recipient=_address(first),
        status=status,
        diagnostic=diagnostic[:MAX_DIAGNOSTIC] if diagnostic else None,
        action=str(first.get("action") or ("failed" if is_permanent else "delayed")),
        original_message_id=_original_id(_object(payload, "mail")),
        is_permanent=is_permanent,
    )
    kind = f"{bounce.get('bounceType') or 'Undetermined'}/{bounce.get('bounceSubType') or ''}"
    details = " ".join(p for p in (status, diagnostic) if p) or kind
    return ProviderNotice(is_complaint=False, reason=f"amazon ses bounce: {details}", bounce=found)


def _original_id(mail: dict[str, Any]) -> str | None:
    """The original's Message-ID header (SES's own ``messageId`` is not one)."""
    common = _object(mail, "commonHeaders").get("messageId")
    if isinstance(common, str) and common:
        return normalise_id(common)
    for header in _objects(mail, "headers"):
        if str(header.get("name", "")).lower() == "message-id":
            return normalise_id(str(header.get("value", "")))
    return None


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _objects(parent: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = parent.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _address(recipient: dict[str, Any]) -> str | None:
    value = recipient.get("emailAddress")
    return value.strip() if isinstance(value, str) and "@" in value else None


def _strip_type(value: str) -> str:
    """Drop the 'smtp;' type prefix of an RFC 3464 Diagnostic-Code value."""
    kind, sep, rest = value.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else value.strip()
