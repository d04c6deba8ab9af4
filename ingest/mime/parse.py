"""Turn raw RFC 5322 bytes into a ParsedMail: pure, lenient with messy mail, bounded in time."""

from __future__ import annotations

import binascii
import functools
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.headerregistry import AddressHeader, BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import TYPE_CHECKING, cast

from ingest.errors import ParseError
from ingest.mime.charsets import clean_text, decode_text, normalise_newlines, salvage_base64
from ingest.mime.filenames import safe_filename
from ingest.mime.header_text import FOLD, decode_header_text, from_surrogates
from ingest.mime.html_text import html_to_text
from ingest.mime.parsed import Address, Attachment, ParsedMail

if TYPE_CHECKING:
    from collections.abc import Iterator


# CPython 3.11's structured-header parser is super-linear (a 40 kB From of
# quotes takes 9 s; an 8 kB Content-Type 0.4 s) and raises IndexError or
# RecursionError on some garbage. The MIME parser reads every part's
# Content-Type five times, so values are capped (Content-* hardest), parsed
# headers are cached, and a header the parser cannot read reads as empty.
_MAX_HEADER_CHARS = 8192
_MAX_CONTENT_HEADER_CHARS = 1024
_MAX_SPECIALS = 24
_MAX_ADDRESS_POLICY_CHARS = 2048  # longer address lists go straight to getaddresses
_MAX_REFERENCES = 100
_MAX_DEFECTS = 100
_DSN = "message/delivery-status"


_PLAIN_HEADERS = HeaderRegistry()


def _bounded_header(name: str, value: str) -> BaseHeader:
    """The policy's header factory, with inputs capped (see above)."""
    if name.lower() not in {"content-type", "content-disposition"}:
        return _cached_header(name, value[:_MAX_HEADER_CHARS])
    return _cached_header(name, _tame(value[:_MAX_CONTENT_HEADER_CHARS]))


def _tame(value: str) -> str:
    """Defuse the parser's worst cases (quote, backslash, parameter soup); real values have few."""
    for char in '"\\':
        if value.count(char) > _MAX_SPECIALS:
            value = value.replace(char, "")
    if value.count(";") > _MAX_SPECIALS:
        value = ";".join(value.split(";", _MAX_SPECIALS + 1)[:_MAX_SPECIALS])
    return value


@functools.lru_cache(maxsize=1024)
def _cached_header(name: str, value: str) -> BaseHeader:
    """Parsed header objects are read-only, so parts with the same header can share one."""
    try:
        return _PLAIN_HEADERS(name, value)
    except Exception:  # noqa: BLE001 - stdlib header parser bugs on hostile input
        return _PLAIN_HEADERS(name, "")


class _Policy(EmailPolicy):
    """``policy.default`` whose header reads are capped and cached (see above).

    The MIME parser and our walk read each part's Content-Type and friends many
    times; the cache spares the stock read (line breaks dropped, then the factory)
    all but the first time.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        """The parsed header, shared with every earlier read of the same raw value."""
        # A header object (set through the API) is returned as is by the stock read.
        if hasattr(value, "name") or len(value) > _MAX_HEADER_CHARS:
            return cast("str", super().header_fetch_parse(name, value))
        return _fetched(self, name, value)


@functools.lru_cache(maxsize=1024)
def _fetched(policy: EmailPolicy, name: str, value: str) -> str:
    # The stock read; its result depends on the header factory alone, which all our
    # policies share, but the policy is in the key to keep that an observation.
    return cast("str", EmailPolicy.header_fetch_parse(policy, name, value))


_POLICY = _Policy(header_factory=_bounded_header)
# Serialising message/* parts: keep header text as received (no refolding).
_RAW_POLICY = _POLICY.clone(refold_source="none", linesep="\r\n")


def parse_message(raw: bytes, *, max_parts: int = 1000, max_depth: int = 20) -> ParsedMail:
    """Parse one message.

    Raises:
        ParseError: the bytes are not an RFC 5322 message, or exceed the limits.
    """
    defects = _Defects()
    raw = _trim_preamble(raw, defects)
    _precheck_parts(raw, max_parts, max_depth)
    msg = _parse_tree(raw)
    _check_limits(msg, max_parts, max_depth, defects)
    body = _Body(defects=defects)
    for part, parent_type in _leaves(msg):
        _take_part(part, parent_type, body)
    return ParsedMail(
        message_id=next(iter(_ids(_first(msg, "message-id"), loose=True)), None),
        in_reply_to=tuple(_ids(_first(msg, "in-reply-to"), loose=False)),
        references=_capped(_ids(" ".join(_all(msg, "references")), loose=False)),
        from_=next(iter(_addresses(msg, "from")), None),
        reply_to=_addresses(msg, "reply-to"),
        to=_addresses(msg, "to"),
        cc=_addresses(msg, "cc"),
        subject=decode_header_text(_first(msg, "subject")),
        date=_date(_first(msg, "date")),
        text=body.best_text(),
        html=body.html,
        attachments=tuple(body.attachments),
        headers=tuple((name, decode_header_text(value)) for name, value in msg.raw_items()),
        content_type=msg.get_content_type(),
        content_key=content_key(raw, msg),
        defects=tuple(defects.items),
        tree=msg,
    )


# --- structure and limits ----------------------------------------------------


@dataclass
class _Defects:
    """Short defect notes, de-duplicated and capped (a hostile message can make thousands)."""

    items: list[str] = field(default_factory=list)

    def add(self, note: str) -> None:
        if note not in self.items and len(self.items) < _MAX_DEFECTS:
            self.items.append(note)


def _trim_preamble(raw: bytes, defects: _Defects) -> bytes:
    """Drop a UTF-8 BOM and blank or indented lead-in that some exporters put before the headers."""
    trimmed = raw.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if not trimmed:
        raise ParseError("not an RFC 5322 message: empty")
    if len(trimmed) != len(raw):
        defects.add("leading BOM or whitespace before the headers removed")
    return trimmed


def _precheck_parts(raw: bytes, max_parts: int, max_depth: int) -> None:
    """Refuse a part bomb before the slow policy parse (0.8 ms a part) by a compat32 count.

    Only a message with more lines starting '--' than ``max_parts`` can hold
    that many parts, so ordinary mail never pays for the second parse.
    """
    if raw.count(b"\n--") <= max_parts:
        return
    try:
        quick = BytesParser(policy=email_policy.compat32).parsebytes(raw)
    except RecursionError:
        raise ParseError("MIME nesting too deep for the parser") from None
    _check_limits(quick, max_parts, max_depth, _Defects())


def _parse_tree(raw: bytes) -> EmailMessage:
    try:
        msg = BytesParser(policy=_POLICY).parsebytes(raw)
    except RecursionError:
        raise ParseError("MIME nesting too deep for the parser") from None
    if not isinstance(msg, EmailMessage):  # pragma: no cover - _POLICY builds EmailMessage
        raise ParseError("parser returned an unexpected type")
    if not msg.keys():
        first_line = raw.split(b"\n", 1)[0][:40]
        raise ParseError(f"not an RFC 5322 message: no header fields (starts {first_line!r})")
    return msg


def _check_limits(msg: Message, max_parts: int, max_depth: int, defects: _Defects) -> None:
    """Walk every part (iteratively: Message.walk recurses) and record parser defects."""
    stack: list[tuple[Message, int, str]] = [(msg, 0, "")]
    count = 0
    while stack:
        part, depth, path = stack.pop()
        count += 1
        if count > max_parts:
            raise ParseError(f"more than {max_parts} MIME parts")
        if depth > max_depth:
            raise ParseError(f"MIME nesting deeper than {max_depth}", part=path)
        for defect in part.defects:
            defects.add(f"{path + ': ' if path else ''}{type(defect).__name__}")
        for index, child in reversed(list(enumerate(_children(part), 1))):
            stack.append((child, depth + 1, f"{path}.{index}" if path else str(index)))


def _leaves(msg: Message) -> Iterator[tuple[Message, str]]:
    """Leaf parts in document order with their parent's type; message/* parts are leaves."""
    stack: list[tuple[Message, str]] = [(msg, "")]
    while stack:
        part, parent_type = stack.pop()
        ctype = part.get_content_type()
        if part.is_multipart() and ctype.startswith("multipart/"):
            stack.extend((child, ctype) for child in reversed(_children(part)))
        else:
            yield part, parent_type


def _children(part: Message) -> list[Message]:
    """Sub-parts of a multipart or message/* part (a DSN's field groups included)."""
    payload = part.get_payload() if part.is_multipart() else []
    return [child for child in payload if isinstance(child, Message)]


# --- body text and attachments ---------------------------------------------


@dataclass
class _Body:
    """What the part walk has found so far."""

    defects: _Defects
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)

    def best_text(self) -> str:
        """The plain text part, else the HTML as text, else a bare DSN's delivery status."""
        if self.text and self.text.strip():
            return self.text
        if self.html:
            return html_to_text(self.html)
        status = next((a for a in self.attachments if a.content_type == _DSN), None)
        if status is not None:  # a report without its human-readable part (RFC 3462 requires one)
            return normalise_newlines(decode_text(status.data, None)[0]).strip()
        return self.text or ""


def _take_part(part: Message, parent_type: str, body: _Body) -> None:
    ctype = part.get_content_type()
    if ctype.startswith("multipart/"):  # no usable boundary: the parser kept the body as text
        ctype = "text/plain"
    if ctype.startswith("text/") and not _is_attachment(part):
        if ctype == "text/plain" and body.text is None:
            body.text = normalise_newlines(_part_text(part, body.defects))
            return
        if ctype == "text/html" and body.html is None:
            body.html = _part_text(part, body.defects)
            return
        if parent_type == "multipart/alternative":
            return  # another rendition (text/enriched, a second HTML) of the body
    body.attachments.append(_attachment(part, len(body.attachments) + 1, body.defects))


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment"


def _attachment(part: Message, index: int, defects: _Defects) -> Attachment:
    ctype = part.get_content_type()
    content_id = _content_id(part)
    disposition = part.get_content_disposition()
    return Attachment(
        filename=safe_filename(part.get_filename(), ctype, index),
        content_type=ctype,
        data=_part_bytes(part, defects),
        is_inline=disposition == "inline" or (disposition is None and content_id is not None),
        content_id=content_id,
    )


def _content_id(part: Message) -> str | None:
    """The Content-ID without angle brackets, as ``cid:`` URLs (RFC 2392) spell it."""
    value = clean_text(decode_header_text(_first(part, "content-id")))
    return "".join(value.split()).strip("<>") or None


def _part_text(part: Message, defects: _Defects) -> str:
    text, note = decode_text(_part_bytes(part, defects), part.get_content_charset())
    if note:
        defects.add(f"body: {note}")
    if "\x00" in text:
        defects.add("body: NUL characters removed")
    return clean_text(text)


def _part_bytes(part: Message, defects: _Defects) -> bytes:
    """Decoded content; message/* parts (rfc822, delivery-status) serialised as received."""
    if part.is_multipart():
        return b"".join(_serialise(sub, defects) for sub in _children(part))
    cte = next(iter(_first(part, "content-transfer-encoding").lower().split()), "")
    if cte == "base64":  # base64 text is ASCII: any other character is junk to skip anyway
        return _base64(_undecoded(part).encode("ascii", "ignore"), defects)
    if cte == "quoted-printable" and _BAD_QP.search(_undecoded(part)):
        defects.add("body: invalid quoted-printable escapes kept as is")
    # decode=True hands back the raw 8-bit bytes (and decodes QP and uuencode);
    # plain get_payload() would already have replaced 8-bit bytes with U+FFFD.
    decoded = part.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else b""


def _undecoded(part: Message) -> str:
    """The payload as parsed, still transfer-encoded.

    Not get_payload(): with 8-bit bytes in the body it decodes them with the
    declared charset, and raises ValueError when that name holds a NUL.
    """
    payload = getattr(part, "_payload", "")  # see above; found by fuzzing
    return payload if isinstance(payload, str) else ""


_BAD_QP = re.compile(r"=(?![0-9A-Fa-f]{2}|\r?\n|[ \t]*\r?$)", re.MULTILINE)


def _base64(data: bytes, defects: _Defects) -> bytes:
    try:
        return binascii.a2b_base64(data)  # non-strict: skips line breaks and stray characters
    except binascii.Error:
        defects.add("body: invalid base64, decoded what could be decoded")
    return salvage_base64(data)


def _serialise(msg: Message, defects: _Defects) -> bytes:
    try:
        return msg.as_bytes(policy=_RAW_POLICY)
    except Exception:  # noqa: BLE001 - the generator re-reads headers; never let it sink the message
        defects.add("an enclosed message could not be serialised")
        return b""


# --- individual headers ------------------------------------------------------


def _all(msg: Message, name: str) -> list[str]:
    return [value for key, value in msg.raw_items() if key.lower() == name]


def _first(msg: Message, name: str) -> str:
    return next(iter(_all(msg, name)), "")


_ANGLE_ID = re.compile(r"<([^<>]*)>")


def _ids(value: str, *, loose: bool) -> list[str]:
    """Message-IDs as ``<id>``: comments and spaces dropped, missing brackets tolerated.

    ``loose`` (for Message-ID) also accepts a bare token without '@'.
    """
    text = _strip_comments(decode_header_text(value))
    ids = ["".join(found.split()) for found in _ANGLE_ID.findall(text)]
    if not any(ids):
        ids = [token.strip("<>") for token in text.split() if loose or "@" in token]
    return list(dict.fromkeys(f"<{found}>" for found in ids if found))


def _capped(ids: list[str]) -> tuple[str, ...]:
    """Keep the first id and the most recent ones (RFC 5537 section 3.4.4 trims the same way)."""
    if len(ids) <= _MAX_REFERENCES:
        return tuple(ids)
    return (ids[0], *ids[-(_MAX_REFERENCES - 1) :])


def _strip_comments(text: str) -> str:
    """Remove RFC 5322 (comments), which nest and take quoted-pairs, outside <...>."""
    if "(" not in text:
        return text
    out: list[str] = []
    depth, in_angle, escaped = 0, False, False
    for char in text:
        if depth:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            else:
                depth += {"(": 1, ")": -1}.get(char, 0)
            continue
        if char == "(" and not in_angle:
            depth = 1
            continue
        in_angle = (in_angle or char == "<") and char != ">"
        out.append(char)
    return "".join(out)


def _addresses(msg: Message, name: str) -> tuple[Address, ...]:
    found: list[Address] = []
    for raw in _all(msg, name):
        value = FOLD.sub("", from_surrogates(raw))
        parsed = None
        if len(value) <= _MAX_ADDRESS_POLICY_CHARS:
            parsed = _simple_addresses(value) or _policy_addresses(name, value)
        found.extend(parsed if parsed is not None else _fallback_addresses(value))
    return tuple(found)


# The common shapes, 'Name Words <local@domain>', '"Quoted, Name" <local@domain>' and
# 'local@domain', in ASCII with dot-atoms only: read directly, as the policy's parser
# reads them (0.5 ms a header there); anything else goes to that parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_SIMPLE_MAILBOX = re.compile(
    rf"[ \t]*(?:(?P<phrase>{_ATEXT}(?:[ \t]+{_ATEXT})*)?[ \t]*<(?P<angle>{_DOT_ATOM}@{_DOT_ATOM})>"
    rf'|"(?P<quoted>[^"\\\x00-\x1f\x7f]*)"[ \t]*<(?P<qangle>{_DOT_ATOM}@{_DOT_ATOM})>'
    rf"|(?P<bare>{_DOT_ATOM}@{_DOT_ATOM}))[ \t]*"
)


def _simple_addresses(value: str) -> list[Address] | None:
    """Addresses of a list of simple mailboxes, or None when any is not simple (see above)."""
    if not value.isascii() or "=?" in value:
        return None
    mailboxes = [value] if '"' in value else value.split(",")
    found = []
    for mailbox in mailboxes:
        match = _SIMPLE_MAILBOX.fullmatch(mailbox)
        if match is None:
            return None
        phrase, quoted = match["phrase"], match["quoted"]
        if quoted is not None and quoted != quoted.strip():
            return None
        name = " ".join(phrase.split()) if phrase else quoted or ""
        found.append(Address(clean_text(name), match["angle"] or match["qangle"] or match["bare"]))
    return found


def _policy_addresses(name: str, value: str) -> list[Address] | None:
    """Addresses by the policy's RFC 5322 parser, or None if it found the header defective."""
    try:
        header = _PLAIN_HEADERS(name, value)
    except Exception:  # noqa: BLE001 - stdlib header parser bugs on hostile input
        return None
    if not isinstance(header, AddressHeader) or header.defects:
        return None
    return [
        Address(clean_text(addr.display_name).strip(), clean_text(addr.addr_spec))
        for addr in header.addresses
        if addr.addr_spec not in {"", "<>"}
    ]


def _fallback_addresses(value: str) -> list[Address]:
    """Addresses of a header the RFC 5322 parser found defective, read as mail clients do.

    Where a mailbox has an address in angle brackets, that is its address (RFC 5322
    3.4 name-addr), whatever the text before it looks like: in
    ``alice@example.com <mallory@evil.example>`` the sender is mallory, as the MUA
    shows and as a border DMARC check judged it; getaddresses would say alice.
    """
    angled = _angle_addresses(value)
    if angled:
        return angled
    try:
        pairs = getaddresses([value])
    except (RecursionError, IndexError, ValueError):  # nested comments overflow its recursion
        return []
    return [Address(decode_header_text(name), clean_text(addr)) for name, addr in pairs if addr]


# An address in angle brackets; found in linear time (the header may be hostile and long).
_ANGLE = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


def _angle_addresses(value: str) -> list[Address]:
    """Each angle address, with the text since the previous mailbox as its display name."""
    found = []
    start = 0
    for match in _ANGLE.finditer(value):
        before = value[start : match.start()]
        # The previous mailbox ends at its last comma outside the name ("Doe, John" stays).
        if before.count('"') % 2 == 0 and "," in before.replace('"', "").strip(", "):
            before = before.rsplit(",", 1)[1]
        phrase = _COMMENT_TEXT.sub(" ", before[:500]).strip(" \t,").strip('"').strip()
        found.append(Address(decode_header_text(phrase), clean_text(match.group(1))))
        start = match.end()
    return found


_COMMENT_TEXT = re.compile(r"\([^()]*\)")


def _date(value: str) -> datetime | None:
    """The Date header as aware UTC; a date without zone (RFC 5322 '-0000') is taken as UTC."""
    text = " ".join(decode_header_text(value).split())[:200]
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# --- identity -----------------------------------------------------------------

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def content_key(raw: bytes, msg: Message) -> str:
    """Hex SHA-256 of Message-ID, From, Date, Subject and the body.

    Trace headers (Received, Delivered-To, Return-Path, ...) are left out, so
    the same mail delivered twice gets the same key. Line endings, header
    folding and trailing blank lines are normalised: SMTP, IMAP and an MTA
    pipe deliver the same mail with different ones.
    """
    digest = hashlib.sha256()
    for name in ("message-id", "from", "date", "subject"):
        value = b" ".join(_first(msg, name).encode("utf-8", "surrogateescape").split())
        digest.update(b"%s:%d:%s\n" % (name.encode(), len(value), value))
    separator = _BLANK_LINE.search(raw)
    body = raw[separator.end() :] if separator else b""
    digest.update(body.replace(b"\r\n", b"\n").rstrip(b"\r\n"))
    return digest.hexdigest()
