"""DKIM/DMARC verdicts read from Authentication-Results headers (RFC 8601) of trusted hosts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from publicsuffixlist import PublicSuffixList

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "AuthVerdict",
    "AuthenticationResults",
    "MethodResult",
    "authentication_verdict",
    "parse_authentication_results",
]

_COMMENT = re.compile(r"\([^()]*\)")
_TOKEN = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^\s"]+)+')
_SPACED_EQUALS = re.compile(r"\s*=\s*")  # RFC 8601 allows CFWS around "="
_METHOD = re.compile(r"([A-Za-z0-9_.-]+)(?:/\d+)?=([A-Za-z0-9_.-]+)")
_PASSING_METHODS = ("dmarc", "dkim")


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One ``method=result`` with its properties, e.g. ``dkim=pass header.d=example.com``."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()

    def prop(self, name: str) -> str | None:
        """The value of property ``name`` (``header.d``), lower-cased, or None."""
        return next((v for k, v in self.properties if k == name.lower()), None)


@dataclass(frozen=True, slots=True)
class AuthenticationResults:
    """One Authentication-Results header: who checked, and what they found."""

    authserv_id: str
    results: tuple[MethodResult, ...]


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    """Whether the mail's From domain passed DKIM or DMARC, with the evidence in words."""

    is_authenticated: bool
    reason: str


def parse_authentication_results(value: str) -> AuthenticationResults | None:
    """Parse one header value; None when it has no authserv-id.

    Comments are dropped, quoted values unquoted, and unknown syntax inside one
    result skips that result only: the header comes from a host we trust, but its
    software may be newer than this parser.
    """
    parts = _split_semicolons(_drop_comments(value))
    words = parts[0].split()
    if not words:
        return None
    results = (r for r in (_method_result(p) for p in parts[1:]) if r is not None)
    return AuthenticationResults(words[0].lower(), tuple(results))


def authentication_verdict(
    header_values: Iterable[str], trusted_authserv_ids: Iterable[str], from_domain: str
) -> AuthVerdict:
    """Judge the From domain by the topmost Authentication-Results of a trusted authserv-id.

    Only the topmost counts: our border MTA prepends its header and must remove
    headers that already claim its id (RFC 8601 section 5); one further down may be
    forged by the sender. A DMARC pass for the From domain counts; so does a DKIM pass
    aligned with it (``_passes_for``).
    """
    trusted = {t.strip().lower() for t in trusted_authserv_ids}
    found = _first_trusted(header_values, trusted)
    if found is None:
        return AuthVerdict(
            is_authenticated=False, reason="no Authentication-Results from a trusted host"
        )
    domain = from_domain.lower()
    for result in found.results:
        if result.method in _PASSING_METHODS and _passes_for(result, domain):
            return AuthVerdict(
                is_authenticated=True, reason=f"{found.authserv_id}: {result.method}=pass"
            )
    seen = ", ".join(f"{r.method}={r.result}" for r in found.results) or "none"
    return AuthVerdict(
        is_authenticated=False,
        reason=f"{found.authserv_id}: no dkim or dmarc pass for {domain} ({seen})",
    )


def _first_trusted(header_values: Iterable[str], trusted: set[str]) -> AuthenticationResults | None:
    for value in header_values:
        parsed = parse_authentication_results(value)
        if parsed is not None and parsed.authserv_id in trusted:
            return parsed
    return None


def _passes_for(result: MethodResult, domain: str) -> bool:
    """Whether ``result`` is a pass for the From ``domain``, aligned as DMARC aligns.

    A DMARC pass counts only when it names the From domain (``header.from``): a pass
    that names no domain, or another one, is not evidence about this mail's From. A
    DKIM pass counts when its signing domain (``header.d``, else ``header.i``) is the
    From domain or shares its organizational domain (relaxed alignment, RFC 7489
    3.2), and is never a public suffix: ``header.d=com`` vouches for no one.
    """
    if result.result != "pass" or not domain:
        return False
    if result.method == "dmarc":
        return result.prop("header.from") == domain
    identity = result.prop("header.d") or result.prop("header.i") or ""
    signer = identity.rpartition("@")[2]
    if not signer:
        return False
    if signer == domain:
        return organizational_domain(signer) is not None
    organization = organizational_domain(signer)
    return organization is not None and organization == organizational_domain(domain)


def organizational_domain(domain: str) -> str | None:
    """The registrable domain under the public suffix list; None for a public suffix."""
    found: str | None = _suffixes().privatesuffix(domain.strip(".").lower())
    return found


@cache
def _suffixes() -> PublicSuffixList:
    # The list ships with the package (no network); parsed once per process.
    return PublicSuffixList()


def _drop_comments(value: str) -> str:
    previous = None
    while previous != value:  # innermost first: RFC 5322 comments nest
        previous, value = value, _COMMENT.sub(" ", value)
    return value


def _split_semicolons(value: str) -> list[str]:
    """Split at ';' outside quoted strings (a reason may contain one)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
    parts.append("".join(current))
    return parts


def _method_result(text: str) -> MethodResult | None:
    tokens = _TOKEN.findall(_SPACED_EQUALS.sub("=", text))
    if not tokens:
        return None
    head = _METHOD.fullmatch(tokens[0])
    if head is None:
        return None
    props = []
    for token in tokens[1:]:
        name, eq, raw = token.partition("=")
        if eq:
            props.append((name.lower(), _unquote(raw).lower()))
    return MethodResult(head.group(1).lower(), head.group(2).lower(), tuple(props))


def _unquote(value: str) -> str:
    if len(value) > 1 and value.startswith('"') and value.endswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
