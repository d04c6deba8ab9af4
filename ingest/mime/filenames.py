"""Attachment display names that can never be used as a path."""

from __future__ import annotations

import functools
import mimetypes
import unicodedata

from ingest.mime.header_text import decode_header_text

_MAX_FILENAME = 200


_EXTENSIONS = {
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "message/feedback-report": ".txt",
    "text/rfc822-headers": ".txt",
    "application/ms-tnef": ".dat",
    "text/calendar": ".ics",
}
# Unicode categories never shown in a name: controls, format (bidi overrides that
# disguise 'exe.pdf'), surrogates, private use, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def safe_filename(
    name: str | None, content_type: str, index: int, *, legacy: str | None = None
) -> str:
    """A display filename that can never act as a path; 'attachment-N.ext' when none is usable.

    ``legacy`` is the charset of the message's raw 8-bit header bytes, if any.
    """
    cleaned = _clean_filename(name, legacy) if name else ""
    return cleaned or f"attachment-{index}{_extension(content_type)}"


def _clean_filename(name: str, legacy: str | None) -> str:
    # RFC 2047 inside a filename is common, though not allowed
    name = decode_header_text(name, legacy=legacy)
    base = name.replace("\\", "/").rpartition("/")[2].replace(":", "_")
    base = "".join(ch for ch in base if unicodedata.category(ch) not in _HIDDEN_CATEGORIES)
    base = base.strip().lstrip(".").rstrip(". ")  # Windows drops trailing dots and spaces
    if len(base) <= _MAX_FILENAME:
        return base
    stem, dot, ext = base.rpartition(".")
    if dot and stem and len(ext) <= 16:  # noqa: PLR2004 - longer is no extension
        return f"{stem[: _MAX_FILENAME - len(ext) - 1].rstrip('. ')}.{ext}"
    return base[:_MAX_FILENAME].rstrip(". ")


def _extension(content_type: str) -> str:
    known = _EXTENSIONS.get(content_type) or _mime_types().guess_extension(content_type)
    return known or (".txt" if content_type.startswith("text/") else ".bin")


@functools.cache
def _mime_types() -> mimetypes.MimeTypes:
    """Python's built-in table only, so names do not depend on the host's /etc/mime.types."""
    return mimetypes.MimeTypes()
