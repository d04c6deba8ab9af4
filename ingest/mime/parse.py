"""Turn raw RFC 5322 bytes into a ParsedMail: pure, lenient with messy mail, bounded in time.

Lenient where real mail is messy: a UTF-8 BOM, blank lines or one line that is no
header field ("---- Original email message ----", left by exporters) before the
headers are skipped and noted; raw 8-bit header bytes are read as UTF-8 (RFC 6532)
or in the legacy charset the message's declarations and detection point to
(``charsets``). Bounded in time: header reads are capped (``policy``), part bombs are
refused before the full parse, and charset detection reads a bounded sample.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from datetime import UTC, datetime
from email import policy as email_policy
from email.headerregistry import AddressHeader
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from ingest.errors import ParseError
from ingest.mime.body import BodyReader, children
from ingest.mime.charsets import clean_text, header_charset
from ingest.mime.defects import Defects
from ingest.mime.feed import parse_bytes
from ingest.mime.header_text import FOLD, decode_header_text, from_surrogates
from ingest.mime.parsed import Address, ParsedMail
from ingest.mime.policy import PLAIN_HEADERS, POLICY

__all__ = ["content_key", "parse_message"]

_MAX_ADDRESS_POLICY_CHARS = 2048  # longer address lists go straight to getaddresses
_MAX_REFERENCES = 100
_MAX_CHARSET_PARTS = 50  # parts whose declarations hint at the header charset
_MAX_HEADER_BYTES = 16 * 1024
# RFC 5322 3.6.8: a field name is printable ASCII but the colon, then the colon.
_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_ENCODED_WORD_CHARSET = re.compile(r"=\?([^?*\s]{1,64})[?*]")


def parse_message(raw: bytes, *, max_parts: int = 1000, max_depth: int = 20) -> ParsedMail:
    """Parse one message.

    Raises:
        ParseError: the bytes are not an RFC 5322 message, or exceed the limits.
    """
    defects = Defects()
    raw = _trim_preamble(raw, defects)
    _precheck_parts(raw, max_parts, max_depth)
    msg = _parse_tree(raw)
    _check_limits(msg, max_parts, max_depth, defects)
    legacy = _header_charset(msg)
    reader = BodyReader(defects, legacy)
    body = reader.read(msg)
    return ParsedMail(
        message_id=next(iter(_ids(_first(msg, "message-id"), loose=True)), None),
        in_reply_to=tuple(_ids(_first(msg, "in-reply-to"), loose=False)),
        references=_capped(_ids(" ".join(_all(msg, "references")), loose=False)),
        from_=next(iter(_addresses(msg, "from", legacy)), None),
        reply_to=_addresses(msg, "reply-to", legacy),
        to=_addresses(msg, "to", legacy),
        cc=_addresses(msg, "cc", legacy),
        subject=decode_header_text(_first(msg, "subject"), legacy=legacy),
        date=_date(_first(msg, "date")),
        text=reader.text(body),
        html=body.html,
        attachments=tuple(body.attachments),
        headers=tuple((k, decode_header_text(v, legacy=legacy)) for k, v in msg.raw_items()),
        content_type=msg.get_content_type(),
        content_key=content_key(raw, msg),
        defects=tuple(defects.items),
        tree=msg,
    )


# --- structure and limits ----------------------------------------------------


def _trim_preamble(raw: bytes, defects: Defects) -> bytes:
    """Drop a UTF-8 BOM and blank or indented lead-in that some exporters put before the headers."""
    trimmed = raw.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if not trimmed:
        raise ParseError("not an RFC 5322 message: empty")
    if len(trimmed) != len(raw):
        defects.add("leading BOM or whitespace before the headers removed")
    return _skip_lead_in(trimmed, defects)


def _skip_lead_in(raw: bytes, defects: Defects) -> bytes:
    """Skip one line that is no header field when header fields follow it.

    Exporters and forwarding tools put a title line such as "---- Original email
    message ----" above the headers; without this the whole message reads as a body.
    The raw bytes are kept by the caller as always; an mbox "From " line is the
    parser's own business.
    """
    first, newline, rest = raw.partition(b"\n")
    if not newline or _HEADER_LINE.match(first) or first.startswith(b"From "):
        return raw
    rest = rest.lstrip(b"\r\n")
    if not _HEADER_LINE.match(rest):
        return raw
    defects.add("a line that is no header field before the headers skipped")
    return rest


def _precheck_parts(raw: bytes, max_parts: int, max_depth: int) -> None:
    """Refuse a part bomb before the slow policy parse (0.8 ms a part) by a compat32 count.

    Only a message with more lines starting '--' than ``max_parts`` can hold
    that many parts, so ordinary mail never pays for the second parse.
    """
    # Each '\n--' holds two of the dashes, and counting one byte costs half as much.
    if raw.count(b"-") <= max_parts or raw.count(b"\n--") <= max_parts:
        return
    try:
        quick = BytesParser(policy=email_policy.compat32).parsebytes(raw)
    except RecursionError:
        raise ParseError("MIME nesting too deep for the parser") from None
    _check_limits(quick, max_parts, max_depth, Defects())


def _parse_tree(raw: bytes) -> EmailMessage:
    try:
        msg = parse_bytes(raw, POLICY)
    except RecursionError:
        raise ParseError("MIME nesting too deep for the parser") from None
    if not isinstance(msg, EmailMessage):  # pragma: no cover - POLICY builds EmailMessage
        raise ParseError("parser returned an unexpected type")
    if not msg.keys():
        first_line = raw.split(b"\n", 1)[0][:40]
        raise ParseError(f"not an RFC 5322 message: no header fields (starts {first_line!r})")
    return msg


def _check_limits(msg: Message, max_parts: int, max_depth: int, defects: Defects) -> None:
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
        for index, child in reversed(list(enumerate(children(part), 1))):
            stack.append((child, depth + 1, f"{path}.{index}" if path else str(index)))


def _header_charset(msg: Message) -> str | None:
    """The legacy charset of the message's raw 8-bit header bytes (see ``charsets``)."""
    parts = list(itertools.islice(msg.walk(), _MAX_CHARSET_PARTS))
    values = [v for part in parts for _, v in part.raw_items() if not v.isascii()]
    if not values:  # most mail: ASCII headers, and no need to read the parts' charsets
        return None
    labels = [label for part in parts for label in [part.get_content_charset()] if label]
    labels += [m[1] for _, v in msg.raw_items() for m in _ENCODED_WORD_CHARSET.finditer(v)]
    data = b"\n".join(v.encode("utf-8", "surrogateescape") for v in values)
    return header_charset(data[:_MAX_HEADER_BYTES], list(dict.fromkeys(labels)))


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


def _addresses(msg: Message, name: str, legacy: str | None) -> tuple[Address, ...]:
    found: list[Address] = []
    for raw in _all(msg, name):
        value = FOLD.sub("", from_surrogates(raw, legacy=legacy))
        parsed = None
        if len(value) <= _MAX_ADDRESS_POLICY_CHARS:
            parsed = _simple_addresses(value) or _policy_addresses(name, value, legacy=legacy)
        found.extend(parsed if parsed is not None else _fallback_addresses(value, legacy))
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


def _policy_addresses(name: str, value: str, *, legacy: str | None = None) -> list[Address] | None:
    """Addresses by the policy's RFC 5322 parser, or None if it found the header defective.

    The display names of encoded words are decoded by ``decode_header_text``: the
    policy's parser keeps the space between adjacent encoded words, which RFC 2047
    section 6.2 says is not displayed ("=?utf-8?b?5pel?= =?utf-8?b?5pys?=" is "日本").
    """
    try:
        header = PLAIN_HEADERS(name, value)
    except Exception:  # noqa: BLE001 - stdlib header parser bugs on hostile input
        return None
    if not isinstance(header, AddressHeader) or header.defects:
        return None
    names = _encoded_names(value, legacy) if "=?" in value else {}
    return [
        Address(
            names.get(addr.addr_spec.lower()) or clean_text(addr.display_name).strip(),
            clean_text(addr.addr_spec),
        )
        for addr in header.addresses
        if addr.addr_spec not in {"", "<>"}
    ]


def _encoded_names(value: str, legacy: str | None) -> dict[str, str]:
    """Display names by lower-cased address, decoded from the raw phrase."""
    return {
        address.lower(): decode_header_text(phrase, legacy=legacy)
        for phrase, address in _pairs(value)
        if address and "=?" in phrase
    }


def _fallback_addresses(value: str, legacy: str | None) -> list[Address]:
    """Addresses of a header the RFC 5322 parser found defective, read as mail clients do.

    Where a mailbox has an address in angle brackets, that is its address (RFC 5322
    3.4 name-addr), whatever the text before it looks like: in
    ``alice@example.com <mallory@evil.example>`` the sender is mallory, as the MUA
    shows and as a border DMARC check judged it; getaddresses would say alice.
    """
    angled = _angle_addresses(value, legacy)
    if angled:
        return angled
    return [
        Address(decode_header_text(name, legacy=legacy), clean_text(addr))
        for name, addr in _pairs(value)
        if addr
    ]


def _pairs(value: str) -> list[tuple[str, str]]:
    """``getaddresses``: (raw display name, address) pairs, empty when it cannot read them."""
    try:
        return getaddresses([value])
    except (RecursionError, IndexError, ValueError):  # nested comments overflow its recursion
        return []


# An address in angle brackets; found in linear time (the header may be hostile and long).
_ANGLE = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


def _angle_addresses(value: str, legacy: str | None) -> list[Address]:
    """Each angle address, with the text since the previous mailbox as its display name."""
    found = []
    start = 0
    for match in _ANGLE.finditer(value):
        before = value[start : match.start()]
        # The previous mailbox ends at its last comma outside the name ("Doe, John" stays).
        if before.count('"') % 2 == 0 and "," in before.replace('"', "").strip(", "):
            before = before.rsplit(",", 1)[1]
        phrase = _COMMENT_TEXT.sub(" ", before[:500]).strip(" \t,").strip('"').strip()
        found.append(Address(decode_header_text(phrase, legacy=legacy), clean_text(match.group(1))))
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
    digest.update(crlf_to_lf(body).rstrip(b"\r\n"))
    return digest.hexdigest()


_LONE_CR = re.compile(rb"\r(?!\n)")


def crlf_to_lf(data: bytes) -> bytes:
    r"""``data.replace(b"\r\n", b"\n")``, at half the cost when every CR ends a line.

    Then dropping every CR is the same thing, and a byte table does it in one pass;
    replace finds the pairs twice (once to count them), 86 us for a 48 kB body.
    """
    if _LONE_CR.search(data) is None:
        return data.translate(None, b"\r")
    return data.replace(b"\r\n", b"\n")
