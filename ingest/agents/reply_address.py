"""Per-case reply addresses: the support address plus-extended with a case ref and its HMAC."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "SIGNATURE_HEX_CHARS",
    "claimed_ref",
    "parse_reply_address",
    "reply_address",
    "signature",
]

# 10 hex characters are 40 bits. The key never leaves the daemon, so a forger cannot
# test guesses offline: each guess is a mail we receive, log and flag as suspicious.
# At a million forged mails the chance of one hit is about 1e-6, and the address stays
# far below the 64-octet limit of a local part (RFC 5321 4.5.3.1.1).
SIGNATURE_HEX_CHARS = 10
_MAX_REF_DIGITS = 12
# Domain separation: the key signs nothing else, but a tag keeps it that way if it ever does.
_CONTEXT = b"mail2case reply address v1\x00"
_EXTENSION = re.compile(rf"(\d{{1,{_MAX_REF_DIGITS}}})-([0-9a-f]{{{SIGNATURE_HEX_CHARS}}})")


def signature(case_ref: int, secret: str) -> str:
    """The truncated HMAC-SHA256 of ``case_ref`` under ``secret``, lower-case hex."""
    if not secret:
        raise ValueError("a reply secret is required to sign reply addresses")
    mac = hmac.new(secret.encode(), _CONTEXT + str(case_ref).encode(), hashlib.sha256)
    return mac.hexdigest()[:SIGNATURE_HEX_CHARS]


def reply_address(support_address: str, case_ref: int, secret: str) -> str:
    """``support+1042-k3f9a2c1e0@example.com``: where agents reply to work case ``case_ref``.

    Raises:
        ValueError: no secret, a negative ref, or ``support_address`` is not local@domain.
    """
    local, at, domain = support_address.rpartition("@")
    if not at or not local or not domain or case_ref < 0:
        raise ValueError(f"cannot build a reply address from {support_address!r}")
    base = local.partition("+")[0]
    return f"{base}+{case_ref}-{signature(case_ref, secret)}@{domain}"


def parse_reply_address(address: str, support_addresses: Iterable[str], secret: str) -> int | None:
    """The case ref of a validly signed reply address of ours, else None.

    Local part and domain compare case-insensitively: some MTAs lower-case whole
    addresses, and the signature is lower-case hex. The signature is compared in
    constant time, so timing reveals nothing about how much of a guess was right.
    """
    ref = claimed_ref(address, support_addresses)
    if ref is None or not secret:
        return None
    given = address.lower().rpartition("@")[0].rpartition("-")[2]
    return ref if hmac.compare_digest(given, signature(ref, secret)) else None


def claimed_ref(address: str, support_addresses: Iterable[str]) -> int | None:
    """The case ref that ``address`` claims as a reply address of ours, signature unchecked."""
    local, _, domain = address.strip().lower().rpartition("@")
    base, plus, extension = local.partition("+")
    ours = {a.strip().lower() for a in support_addresses}
    if not plus or f"{base}@{domain}" not in ours:
        return None
    found = _EXTENSION.fullmatch(extension)
    return int(found.group(1)) if found else None
