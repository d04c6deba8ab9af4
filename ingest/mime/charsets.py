"""Decoding text in declared, mislabelled or unknown charsets, never raising."""

from __future__ import annotations

import binascii
import codecs

# Labels Python does not know, mapped to a codec that reads them.
_LABEL_ALIASES = {
    "unicode-1-1-utf-7": "utf-7",
    "unicode-1-1-utf-8": "utf-8",
    # RFC 1556: the -i/-e suffixes only say how bidirectional text is laid out.
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "x-sjis": "cp932",
    "x-gbk": "gb18030",
    "x-euc-jp": "euc_jp",
    "x-mac-roman": "mac_roman",
}
# Codecs replaced by the superset that senders actually use (as WHATWG Encoding does).
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",  # 'ks_c_5601-1987' is an alias of euc_kr in Python
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    "iso8859-1": "cp1252",
    "tis-620": "cp874",
}
# What to try next when the declared codec fails on the data. UTF-7 mislabelled
# ASCII (a '+' in a PGP signature) decodes to garbage, so try ASCII first.
_NEXT_TRY = {"iso2022_jp": ("iso2022_jp_2", "iso2022_jp_ext"), "utf-7": ("ascii",)}
_NOT_A_CHARSET = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "punycode", "idna", "mbcs", "oem"}
)


def decode_text(data: bytes, label: str | None) -> tuple[str, str | None]:
    """Decode with the declared charset, falling back sanely; never raises.

    Returns:
        The text, and a short note when the declared charset was unknown or wrong.
    """
    codec = _codec(label)
    tries = [codec, *_NEXT_TRY.get(codec or "", ())] if codec else ["ascii"]
    # A stateful 7-bit codec failing on ASCII, or UTF-16/32 failing, is damage, not a lie.
    if not data.isascii() and not (codec or "").startswith(("utf-16", "utf-32")):
        tries += ["utf-8", "cp1252"]
    for name in tries:
        try:
            text = data.decode(name)
        except (UnicodeError, LookupError):
            continue
        return text, _charset_note(label, codec, name)
    if codec is None:
        what = "no charset" if label is None else f"charset {label!r} unknown"
        return data.decode("latin-1"), f"{what}; 8-bit text read as latin-1"
    return data.decode(
        codec, errors="replace"
    ), f"charset {label!r} did not decode; bad bytes replaced"


def _charset_note(label: str | None, codec: str | None, used: str) -> str | None:
    if label is None or used == codec:
        return None
    if codec is None and used == "ascii":
        return None
    return f"charset {label!r} {'unknown' if codec is None else 'did not decode'}; used {used}"


def _codec(label: str | None) -> str | None:
    """The codec name for a charset label, or None when it is missing or unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _LABEL_ALIASES.get(name, name)
    try:
        name = codecs.lookup(name).name
        b"x".decode(name, "ignore")  # refuses non-text codecs (zlib, base64); b"" would not
    except (LookupError, UnicodeError, ValueError, TypeError):
        return None
    return None if name in _NOT_A_CHARSET else _SUPERSETS.get(name, name)


def normalise_newlines(text: str) -> str:
    """Text with every CRLF and lone CR turned into LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def clean_text(text: str) -> str:
    """Drop NULs (PostgreSQL text refuses them) and lone surrogates (UTF-8 refuses them)."""
    text = text.replace("\x00", "")
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


_B64_JUNK = bytes(
    set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
)


def salvage_base64(data: bytes) -> bytes:
    """Keep only base64 alphabet characters, drop a dangling sixth bit group, re-pad."""
    clean = data.translate(None, _B64_JUNK)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))
