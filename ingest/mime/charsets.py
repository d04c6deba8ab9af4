"""Decoding text in declared, mislabelled or unknown charsets, never raising.

A decode is *clean* unless a single-byte code page read C1 control characters
(U+0080-U+009F: an ISO 8859 reading of bytes that mean something else). For 8-bit
text the candidates are tried in this order; the first clean reading that is not a
mess wins:

1. UTF-8, when the label names a single-byte charset and the bytes are valid UTF-8 with
   multi-byte sequences (legacy text is practically never valid UTF-8 by chance);
2. the declared charset (a superset senders actually use, as WHATWG Encoding maps
   them), unless a single-byte code page reads many 8-bit bytes as a mess (charset-
   normalizer's mess ratio: Shift_JIS labelled Latin-1), when only a multi-byte
   reading can replace it, then its relatives: the
   Windows code page an ISO 8859 label is mislabelled for (they differ in 0x80-0x9F,
   which mailers fill anyway), Shift_JIS or EUC-JP for 8-bit bytes labelled ISO-2022-JP
   (which is 7-bit);
3. UTF-8 (RFC 6532), then the charsets ``hints`` name (others the message declares);
4. UTF-8 with the bad bytes replaced, when most of its multi-byte characters are valid
   (damaged in transit, not another charset);
5. the charset charset-normalizer detects among those mail is written in;
6. Windows-1252, the web's and mail's de facto default.

When only messy readings are clean, the first stands; when none is clean, the text is
decoded with replacement characters, and noted.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
from typing import TYPE_CHECKING

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

if TYPE_CHECKING:
    from collections.abc import Iterator

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
# What to try next when the declared codec fails on the data. UTF-7 mislabelled ASCII
# (a '+' in a PGP signature) decodes to garbage, so try ASCII first.
_NEXT_TRY = {
    "iso2022_jp": ("iso2022_jp_2", "iso2022_jp_ext"),
    "iso2022_jp_2": ("iso2022_jp_ext",),
    "utf-7": ("ascii",),
}
# What 8-bit bytes under a label usually are when the label's own codec fails on them
# or reads C1 controls: ISO-2022-JP is 7-bit, so 8-bit "ISO-2022-JP" is Shift_JIS or
# EUC-JP; an ISO 8859 label often carries the matching Windows code page.
_RELATIVES = {
    "iso2022_jp": ("cp932", "euc_jp"),
    "iso2022_jp_2": ("cp932", "euc_jp"),
    "iso2022_jp_ext": ("cp932", "euc_jp"),
    "euc_jp": ("cp932",),
    "cp932": ("euc_jp",),
    "iso8859-2": ("cp1250",),
    "iso8859-5": ("cp1251",),
    "koi8-r": ("koi8-u",),
    "iso8859-7": ("cp1253",),
    "iso8859-9": ("cp1254",),
    "iso8859-8": ("cp1255",),
    "iso8859-6": ("cp1256",),
    "iso8859-4": ("cp1257",),
    "iso8859-13": ("cp1257",),
    "iso8859-15": ("cp1252",),
}
_NOT_A_CHARSET = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "punycode", "idna", "mbcs", "oem"}
)
# The charsets mail is written in, for detection; ties go to the earlier one.
_DETECTABLE = [
    "cp1252",
    "cp1251",
    "cp1250",
    "cp932",
    "gb18030",
    "cp949",
    "big5hkscs",
    "euc_jp",
    "cp1253",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "koi8_r",
    "cp874",
    "cp1258",
]
# Where the declared and hinted charsets end and guessing begins (not a codec).
_GUESSING = "(guess)"
_MAX_DETECT_BYTES = 64 * 1024  # detection reads a sample; the chosen codec reads it all
_MAX_MESS_CHARS = 8192
_MESS_THRESHOLD = 0.2  # charset-normalizer's own default
_MIN_MESS_CHARS = 16  # non-ASCII characters needed to judge a reading a mess
_C1 = re.compile("[\x80-\x9f]")
# C1 controls left in decoded text (double-encoded Windows-1252) read as that code page.
_C1_REPAIR = str.maketrans(
    {chr(b): bytes([b]).decode("cp1252", "ignore") or None for b in range(0x80, 0xA0)}
)


def decode_text(
    data: bytes, label: str | None, *, hints: tuple[str, ...] = ()
) -> tuple[str, str | None]:
    """Decode with the declared charset, falling back sanely (see above); never raises.

    Returns:
        The text, and a short note when the declared charset was unknown or wrong.
    """
    codec = _codec(label)
    if data.isascii() or (codec or "").startswith(("utf-16", "utf-32")):
        # ASCII reads the same in every ASCII-based charset; a stateful 7-bit codec failing
        # on it, or UTF-16/32 failing, is damage, not a lie.
        for name in [codec, *_NEXT_TRY.get(codec, ())] if codec else ["ascii"]:
            text = _strict(data, name)
            if text is not None:
                return text, _charset_note(label, codec, name)
        return _damaged(data, label, codec)
    messy: tuple[str, str] | None = None
    for name in _candidates(data, codec, hints):
        text = _strict(data, name)
        if text is None or not _is_clean(text, name):
            if name == _GUESSING and _is_damaged_utf8(data):
                what = f"charset {label!r} did not decode" if label else "no charset"
                return data.decode("utf-8", "replace"), f"{what}; UTF-8 with bad bytes replaced"
            continue
        if messy is not None and _is_single_byte(name):
            continue  # after a mess, only a multi-byte reading can tell better
        if _is_mess(text, name):
            messy = messy or (text, name)
            continue
        return text, _charset_note(label, codec, name)
    if messy is not None:  # nothing read better: the first reading stands
        return messy[0], _charset_note(label, codec, messy[1])
    return _damaged(data, label, codec)


def header_charset(data: bytes, labels: list[str]) -> str | None:
    """The legacy charset of a message's raw 8-bit header bytes; None when they are UTF-8.

    Header bytes are few, too few to detect a charset from alone: the charsets the
    message declares (``labels``) are tried first, then detection over all of them.
    """
    if data.isascii() or _strict(data, "utf-8") is not None:
        return None
    for label in labels:
        codec = _codec(label)
        for name in [codec, *_RELATIVES.get(codec, ())] if codec else []:
            text = _strict(data, name)
            if text is not None and _is_clean(text, name) and not _is_mess(text, name):
                return name
    return next(iter(_detected(data)), None)


def _candidates(data: bytes, codec: str | None, hints: tuple[str, ...]) -> Iterator[str]:
    """The codecs to try on 8-bit ``data``, in order; detection runs only if reached."""
    if codec and _is_single_byte(codec) and _strict(data, "utf-8") is not None:
        yield "utf-8"
    if codec:
        yield codec
        yield from _NEXT_TRY.get(codec, ())
        yield from _RELATIVES.get(codec, ())
    yield "utf-8"
    yield from (c for c in (_codec(h) for h in hints) if c)
    yield _GUESSING
    yield from _detected(data)
    yield "cp1252"


def _is_clean(text: str, codec: str) -> bool:
    """No C1 controls from a single-byte code page: those bytes meant something else.

    UTF-8 text with C1 characters is Windows-1252 encoded twice; ``clean_text`` reads it.
    """
    return codec == "utf-8" or not _C1.search(text)


def _is_mess(text: str, codec: str) -> bool:
    """A single-byte code page's reading that looks like mojibake (Shift_JIS read as Latin-1).

    Any byte reads as some letter or sign in those code pages, so a reading without
    C1 controls can still be wrong; charset-normalizer's mess ratio tells, given some
    text: "test äöüßÄÖÜß€" is a mess by that measure too, so short readings are taken.
    """
    if not _is_single_byte(codec):
        return False
    sample = text[:_MAX_MESS_CHARS]
    if sum(1 for char in sample if char > "\x7f") < _MIN_MESS_CHARS:
        return False
    return mess_ratio(sample, _MESS_THRESHOLD) >= _MESS_THRESHOLD


def _is_damaged_utf8(data: bytes) -> bool:
    """UTF-8 with a few broken bytes: valid multi-byte characters outnumber them 4 to 1.

    A legacy charset read as UTF-8 fails on nearly every non-ASCII byte instead.
    """
    text = data[:_MAX_DETECT_BYTES].decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for char in text if char > "\x7f") - bad
    return good > 0 and good >= 4 * bad


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError):
        return None


def _damaged(data: bytes, label: str | None, codec: str | None) -> tuple[str, str]:
    """No clean decode exists: the declared codec (else Windows-1252) with replacements."""
    if codec is None:
        what = "no charset" if label is None else f"charset {label!r} unknown"
        return data.decode("cp1252", "replace"), f"{what}; 8-bit text read as windows-1252"
    note = f"charset {label!r} did not decode; bad bytes replaced"
    return data.decode(codec, errors="replace").translate(_C1_REPAIR), note


def _detected(data: bytes) -> list[str]:
    """The charset charset-normalizer reads ``data`` in (from a bounded sample), if any.

    Its least messy reading wins; on a tie (short text often reads cleanly in several)
    the charset earlier in ``_DETECTABLE``, the more common in mail.
    """
    matches = from_bytes(
        data[:_MAX_DETECT_BYTES], cp_isolation=_DETECTABLE, preemptive_behaviour=False
    )
    ranked = sorted(
        (round(m.chaos, 3), -round(m.coherence, 3), _preference(m.could_be_from_charset))
        for m in matches
    )
    return [_DETECTABLE[index] for *_, index in ranked[:1] if index < len(_DETECTABLE)]


def _preference(encodings: list[str]) -> int:
    """The position in ``_DETECTABLE`` of the most common of equivalent readings."""
    return min((_DETECTABLE.index(e) for e in encodings if e in _DETECTABLE), default=99)


@functools.cache
def _is_single_byte(codec: str) -> bool:
    """True for a charset with one byte a character (ASCII, ISO 8859, Windows, KOI8 ...)."""
    if codec.startswith(("utf", "iso2022")):
        return False
    return len(bytes(range(256)).decode(codec, "replace")) == len(range(256))


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
    """Drop NULs (PostgreSQL text refuses them) and lone surrogates (UTF-8 refuses them).

    C1 controls left in text decoded as UTF-8 (Windows-1252 text encoded twice) are
    read as that code page: they are never anything a person wrote.
    """
    text = text.replace("\x00", "")
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8").translate(_C1_REPAIR)


_B64_JUNK = bytes(
    set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
)


def salvage_base64(data: bytes) -> bytes:
    """Keep only base64 alphabet characters, drop a dangling sixth bit group, re-pad."""
    clean = data.translate(None, _B64_JUNK)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))
