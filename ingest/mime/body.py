"""The body of a parsed MIME tree: the text agents read, the HTML, and the attachments.

- ``multipart/alternative`` holds renditions of one content (RFC 2046 5.1.4): one is
  chosen, plain text before HTML, a blank rendition never; the parts of the others that
  are not text (inline images of the HTML) are kept as attachments.
- Every other multipart (``mixed``, ``related``, ``digest`` ...) holds content in order
  (RFC 2046 5.1.3): each inline ``text/plain`` or ``text/html`` part is body text, HTML
  converted to text, in document order. A text part with ``Content-Disposition:
  attachment``, or with a file name after the body has begun, is a file.
- When that gives no text, a report's ``message/delivery-status`` fields are the text
  (RFC 3462 wants a readable part; some reports lack it), else the text of the first
  attached ``message/rfc822``: mail forwarded as an attachment with an empty cover.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING

from ingest.mime.charsets import clean_text, decode_text, normalise_newlines, salvage_base64
from ingest.mime.filenames import safe_filename
from ingest.mime.header_text import decode_header_text, from_surrogates
from ingest.mime.html_text import html_to_text
from ingest.mime.parsed import Attachment
from ingest.mime.policy import RAW_POLICY

if TYPE_CHECKING:
    from ingest.mime.defects import Defects

__all__ = ["Body", "BodyReader", "children"]

_DSN = "message/delivery-status"
_BODY_TYPES = frozenset({"text/plain", "text/html"})


@dataclass
class Body:
    """What the walk of a message found: text in document order, the HTML, the parts."""

    segments: list[str] = field(default_factory=list)
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    forwarded: Message | None = None

    @property
    def has_text(self) -> bool:
        """True when some body text is not blank."""
        return any(segment.strip() for segment in self.segments)

    def joined(self) -> str:
        """The body text: one part as it is, several separated by a blank line."""
        filled = [segment for segment in self.segments if segment.strip()]
        if len(filled) == 1:
            return filled[0]
        return "\n\n".join(segment.strip("\n") for segment in filled) + "\n" if filled else ""


@dataclass
class BodyReader:
    """Reads the body of one message; ``legacy`` is its header charset, for file names.

    ``text_only`` skips decoding attachments (but a report's status part), for reading
    the text of a forwarded message whose bytes are kept whole anyway.
    """

    defects: Defects
    legacy: str | None = None
    text_only: bool = False
    # Inside a rendition that cannot be chosen (a plain one with text came before it):
    # its HTML is kept as is, not turned into text nobody reads (see _alternative).
    _html_unread: bool = field(default=False, init=False, repr=False)

    def read(self, msg: Message) -> Body:
        """The body, attachments numbered in document order."""
        body = Body()
        self._visit(msg, body)
        return body

    def text(self, body: Body) -> str:
        """The text agents read (see the module docstring for the fallbacks)."""
        if body.has_text:
            return body.joined()
        status = next((a for a in body.attachments if a.content_type == _DSN), None)
        if status is not None:
            return normalise_newlines(decode_text(status.data, None)[0]).strip()
        if body.forwarded is not None:
            inner = BodyReader(self.defects, self.legacy, text_only=True)
            found = inner.text(inner.read(body.forwarded))
            if found.strip():
                return found
        return body.joined()

    def _visit(self, part: Message, body: Body) -> None:
        ctype = part.get_content_type()
        if part.is_multipart() and ctype.startswith("multipart/"):
            parts = children(part)
            if ctype == "multipart/alternative":
                self._alternative(parts, body)
            else:
                for child in parts:
                    self._visit(child, body)
            return
        self._leaf(part, body)

    def _alternative(self, parts: list[Message], body: Body) -> None:
        """Keep one rendition's text; every rendition's HTML and non-text parts."""
        renditions = []
        unread_before = self._html_unread
        for child in parts:
            if _is_other_rendition(child):
                continue  # text/enriched and the like: the same content once more
            found = Body(attachments=body.attachments)
            self._visit(child, found)
            body.html = body.html if body.html is not None else found.html
            body.forwarded = body.forwarded or found.forwarded
            is_plain = child.get_content_type() == "text/plain"
            renditions.append((is_plain, found))
            # The first plain rendition with text is chosen below, whatever follows it.
            self._html_unread |= is_plain and found.has_text
        self._html_unread = unread_before
        plain = [found for is_plain, found in renditions if is_plain and found.has_text]
        filled = [found for _, found in renditions if found.has_text]
        chosen = plain[:1] or filled[-1:] or [found for _, found in renditions[:1]]
        for found in chosen:
            body.segments.extend(found.segments)

    def _leaf(self, part: Message, body: Body) -> None:
        ctype = part.get_content_type()
        if ctype.startswith("multipart/"):  # no usable boundary: the parser kept it as text
            ctype = "text/plain"
        if ctype in _BODY_TYPES and _is_body_text(part, body):
            text = _part_text(part, self.defects)
            if ctype == "text/html":
                body.html = body.html if body.html is not None else text
                # Unread: kept as the segment all the same, so that what follows in the
                # rendition sees the body begun (_is_body_text) exactly as before.
                text = text if self._html_unread else html_to_text(text)
            body.segments.append(normalise_newlines(text))
            return
        if ctype == "message/rfc822" and body.forwarded is None:
            inner = children(part)
            body.forwarded = inner[0] if inner else None
        if self.text_only and ctype != _DSN:
            return
        index = len(body.attachments) + 1
        body.attachments.append(_attachment(part, index, self.defects, self.legacy))


def _is_body_text(part: Message, body: Body) -> bool:
    """Inline text is body text; a named text part after the body has begun is a file."""
    if part.get_content_disposition() == "attachment":
        return False
    return not (body.segments and part.get_filename())


def _is_other_rendition(part: Message) -> bool:
    """A text rendition we do not read (text/enriched ...), not sent as a file."""
    ctype = part.get_content_type()
    return (
        ctype.startswith("text/")
        and ctype not in _BODY_TYPES
        and part.get_content_disposition() != "attachment"
    )


def children(part: Message) -> list[Message]:
    """Sub-parts of a multipart or message/* part (a DSN's field groups included)."""
    payload = part.get_payload() if part.is_multipart() else []
    return [child for child in payload if isinstance(child, Message)]


def _attachment(part: Message, index: int, defects: Defects, legacy: str | None) -> Attachment:
    ctype = part.get_content_type()
    content_id = _content_id(part, legacy)
    disposition = part.get_content_disposition()
    return Attachment(
        filename=safe_filename(_filename(part, legacy), ctype, index, legacy=legacy),
        content_type=ctype,
        data=part_bytes(part, defects),
        is_inline=disposition == "inline" or (disposition is None and content_id is not None),
        content_id=content_id,
    )


def _filename(part: Message, legacy: str | None) -> str | None:
    """The part's file name; raw 8-bit bytes in it read as the message's header charset.

    The policy's parameter parser turns such bytes into U+FFFD, so a name holding
    them is read from the raw header text instead.
    """
    for name in ("content-disposition", "content-type"):
        raw = _header(part, name)
        if not raw.isascii():
            found = _RAW_FILENAME.search(from_surrogates(raw, legacy=legacy))
            if found:
                return found.group(1).strip('"').replace('\\"', '"')
    return part.get_filename()


_RAW_FILENAME = re.compile(r'\b(?:file)?name\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]+)', re.IGNORECASE)


def _content_id(part: Message, legacy: str | None) -> str | None:
    """The Content-ID without angle brackets, as ``cid:`` URLs (RFC 2392) spell it."""
    raw = next((v for k, v in part.raw_items() if k.lower() == "content-id"), "")
    value = clean_text(decode_header_text(raw, legacy=legacy))
    return "".join(value.split()).strip("<>") or None


def _part_text(part: Message, defects: Defects) -> str:
    text, note = decode_text(part_bytes(part, defects), part.get_content_charset())
    if note:
        defects.add(f"body: {note}")
    if "\x00" in text:
        defects.add("body: NUL characters removed")
    return clean_text(text)


def part_bytes(part: Message, defects: Defects) -> bytes:
    """Decoded content; message/* parts (rfc822, delivery-status) serialised as received."""
    if part.is_multipart():
        return b"".join(_serialise(sub, defects) for sub in children(part))
    cte = next(iter(_header(part, "content-transfer-encoding").lower().split()), "")
    if cte == "base64":  # base64 text is ASCII: any other character is junk to skip anyway
        return _base64(_undecoded(part).encode("ascii", "ignore"), defects)
    if cte == "quoted-printable" and _BAD_QP.search(_undecoded(part)):
        defects.add("body: invalid quoted-printable escapes kept as is")
    # decode=True hands back the raw 8-bit bytes (and decodes QP and uuencode);
    # plain get_payload() would already have replaced 8-bit bytes with U+FFFD.
    decoded = part.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else b""


def _header(part: Message, name: str) -> str:
    return next((v for k, v in part.raw_items() if k.lower() == name), "")


def _undecoded(part: Message) -> str:
    """The payload as parsed, still transfer-encoded.

    Not get_payload(): with 8-bit bytes in the body it decodes them with the
    declared charset, and raises ValueError when that name holds a NUL.
    """
    payload = getattr(part, "_payload", "")  # see above; found by fuzzing
    return payload if isinstance(payload, str) else ""


_BAD_QP = re.compile(r"=(?![0-9A-Fa-f]{2}|\r?\n|[ \t]*\r?$)", re.MULTILINE)


def _base64(data: bytes, defects: Defects) -> bytes:
    try:
        return binascii.a2b_base64(data)  # non-strict: skips line breaks and stray characters
    except binascii.Error:
        defects.add("body: invalid base64, decoded what could be decoded")
    return salvage_base64(data)


def _serialise(msg: Message, defects: Defects) -> bytes:
    try:
        return msg.as_bytes(policy=RAW_POLICY)
    except Exception:  # noqa: BLE001 - the generator re-reads headers; never let it sink the message
        defects.add("an enclosed message could not be serialised")
        return b""
