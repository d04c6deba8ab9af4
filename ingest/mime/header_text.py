"""Header text: RFC 2047 encoded words decoded, folding undone, never raising."""

from __future__ import annotations

import binascii
import re
from email.utils import getaddresses

from ingest.mime.charsets import clean_text, decode_text, salvage_base64

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*)\?=")
FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAK = re.compile(r"[\r\n]+")


def decode_header_text(raw: str, *, legacy: str | None = None) -> str:
    """A header value as one line of text: 8-bit bytes and RFC 2047 encoded words decoded.

    ``legacy`` is the charset the message's raw 8-bit header bytes are in, when not
    UTF-8 (``charsets.header_charset``); it is also the first guess for an encoded word
    whose label does not fit its bytes.
    """
    text = _LINE_BREAK.sub(" ", FOLD.sub("", from_surrogates(raw, legacy=legacy)))
    return clean_text(_LINE_BREAK.sub(" ", _decode_words(text, legacy))).strip()


def from_surrogates(value: str, *, legacy: str | None = None) -> str:
    """Read raw 8-bit header bytes as UTF-8 (RFC 6532), else in ``legacy``, else detected."""
    if value.isascii():
        return value
    data = value.encode("utf-8", "surrogateescape")
    return decode_text(data, None, hints=(legacy,) if legacy else ())[0]


def _decode_words(text: str, legacy: str | None) -> str:
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        # RFC 2047 section 6.2: whitespace between adjacent encoded words is not displayed.
        if between and not (pending_charset is not None and between.isspace()):
            out.append(_flush(pending, pending_charset, legacy))
            pending_charset = None
            out.append(between)
        charset = match[1].partition("*")[0].lower()  # RFC 2231 section 5 language suffix
        if charset != pending_charset:  # a multibyte character may span two words
            out.append(_flush(pending, pending_charset, legacy))
            pending_charset = charset
        pending += _word_bytes(match[2].upper(), match[3])
        pos = match.end()
    out.append(_flush(pending, pending_charset, legacy))
    out.append(text[pos:])
    return "".join(out)


def _flush(pending: bytearray, charset: str | None, legacy: str | None) -> str:
    if not pending:
        return ""
    text = decode_text(bytes(pending), charset, hints=(legacy,) if legacy else ())[0]
    pending.clear()
    return text


def _word_bytes(encoding: str, payload: str) -> bytes:
    data = payload.encode("ascii", "replace")
    if encoding == "Q":
        return binascii.a2b_qp(data, header=True)  # header=True: '_' is a space (RFC 2047 4.2)
    return salvage_base64(data)


def header_addresses(value: str) -> list[str]:
    """The addresses a header value names (``a@x``, ``Name <a@x>``, ``a@x (comment)``).

    Lower-cased; none for a value getaddresses cannot read: deeply nested comments in a
    hostile header overflow its recursion, and that must not make the analysis fail.
    """
    try:
        pairs = getaddresses([value])
    except (RecursionError, IndexError, ValueError):
        return []
    return [addr.lower() for _, addr in pairs if "@" in addr]
