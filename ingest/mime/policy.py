"""The email policy the parser reads with: header reads capped, cached and never raising."""

from __future__ import annotations

import functools
from email.headerregistry import BaseHeader, HeaderRegistry
from email.policy import EmailPolicy
from typing import cast

__all__ = ["MAX_HEADER_CHARS", "PLAIN_HEADERS", "POLICY", "RAW_POLICY"]

# CPython 3.11's structured-header parser is super-linear (a 40 kB From of
# quotes takes 9 s; an 8 kB Content-Type 0.4 s) and raises IndexError or
# RecursionError on some garbage. The MIME parser reads every part's
# Content-Type five times, so values are capped (Content-* hardest), parsed
# headers are cached, and a header the parser cannot read reads as empty.
MAX_HEADER_CHARS = 8192
_MAX_CONTENT_HEADER_CHARS = 1024
_MAX_SPECIALS = 24


PLAIN_HEADERS = HeaderRegistry()


def _bounded_header(name: str, value: str) -> BaseHeader:
    """The policy's header factory, with inputs capped (see above)."""
    if name.lower() not in {"content-type", "content-disposition"}:
        return _cached_header(name, value[:MAX_HEADER_CHARS])
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
        return PLAIN_HEADERS(name, value)
    except Exception:  # noqa: BLE001 - stdlib header parser bugs on hostile input
        return PLAIN_HEADERS(name, "")


class _Policy(EmailPolicy):
    """``policy.default`` whose header reads are capped and cached (see above).

    The MIME parser and our walk read each part's Content-Type and friends many
    times; the cache spares the stock read (line breaks dropped, then the factory)
    all but the first time.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        """The parsed header, shared with every earlier read of the same raw value."""
        # A header object (set through the API) is returned as is by the stock read.
        if hasattr(value, "name") or len(value) > MAX_HEADER_CHARS:
            return cast("str", super().header_fetch_parse(name, value))
        return _fetched(self, name, value)


@functools.lru_cache(maxsize=1024)
def _fetched(policy: EmailPolicy, name: str, value: str) -> str:
    # The stock read; its result depends on the header factory alone, which all our
    # policies share, but the policy is in the key to keep that an observation.
    return cast("str", EmailPolicy.header_fetch_parse(policy, name, value))


POLICY = _Policy(header_factory=_bounded_header)
# Serialising message/* parts: keep header text as received (no refolding).
RAW_POLICY = POLICY.clone(refold_source="none", linesep="\r\n")
