"""What a delivery report says, as values, and the readers every kind of report shares."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ingest.mime.parsed import ParsedMail

__all__ = ["Bounce", "BounceFinding", "first_address", "original_message_id", "summary", "walk"]

MAX_DIAGNOSTIC = 200
_ADDRESS = re.compile(r"<?([A-Za-z0-9._%+=/&-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?")


@dataclass(frozen=True, slots=True)
class Bounce:
    """What a delivery report says about the failed recipient; any field may be unknown."""

    recipient: str | None
    status: str | None
    diagnostic: str | None
    action: str | None
    original_message_id: str | None
    is_permanent: bool


@dataclass(frozen=True, slots=True)
class BounceFinding:
    """A recognised bounce, the evidence as a reason, and whether it was an RFC 3464 DSN."""

    bounce: Bounce
    reason: str
    is_dsn: bool


def summary(bounce: Bounce) -> str:
    """A short 'status diagnostic' text for a reason line."""
    parts = [p for p in (bounce.status, bounce.diagnostic) if p]
    if not parts:
        return bounce.action or "no details"
    text = " ".join(parts)
    return text if len(text) <= MAX_DIAGNOSTIC else text[: MAX_DIAGNOSTIC - 1] + "…"


def first_address(text: str) -> str | None:
    """The first mail address in ``text``, without angle brackets, or None."""
    found = _ADDRESS.search(text)
    return found.group(1).strip(".") if found else None


def walk(message: Message) -> Iterator[Message]:
    """Every part, without descending into the returned original message."""
    yield message
    # is_multipart() before get_payload(): on a leaf, get_payload() decodes with the
    # declared charset and raises ValueError for one with a NUL in it (found by fuzzing).
    if message.is_multipart() and message.get_content_maintype() == "multipart":
        for part in message.get_payload():
            if isinstance(part, Message):
                yield from walk(part)


def original_message_id(mail: ParsedMail) -> str | None:
    """The Message-ID of the returned original (message/rfc822 or text/rfc822-headers)."""
    if mail.tree is not None:
        for part in walk(mail.tree):
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
        return normalise_id(str(value)) if value else None
    if content_type == "text/rfc822-headers":
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
        found = re.search(r"^message-id:\s*(\S+)", text, re.IGNORECASE | re.MULTILINE)
        return normalise_id(found.group(1)) if found else None
    return None


def normalise_id(value: str) -> str | None:
    """A Message-ID as ``<id>``, or None when ``value`` holds none."""
    found = re.search(r"<?([^<>\s]+@[^<>\s]+)>?", value)
    return f"<{found.group(1)}>" if found else None
