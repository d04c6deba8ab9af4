"""An RFC 3463 enhanced status code read from a bounce's free text.

Delivery reports give the status in ``Status:`` (RFC 3464) or quote it beside the SMTP
reply ("550 5.1.1 ..."). Many notices give neither: Exim writes "Unrouteable address",
Postfix "Host or domain name not found", sendmail "User unknown". Their meaning is
still one of RFC 3463's subject codes, so the wording of the common MTAs' diagnostics
is mapped to the code RFC 3463 section 3 defines for it. Failing that, a bare SMTP
reply code (RFC 5321 section 4.2) still gives the class: X.0.0, "other undefined".
"""

from __future__ import annotations

import re

__all__ = ["enhanced_status", "status_from_text"]

# A status in free text stands alone (not part of an IP address or a version number);
# only the failure classes 4 and 5 are meaningful in a bounce.
_ENHANCED = re.compile(r"(?<![\d.])([45]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)")
# An SMTP reply code at the start of a reply line, or after "said:" / "error:".
# A phone number ("555-1234") is not one.
_REPLY_CODE = re.compile(r"(?:^|[\s:(\[])([45])[0-5]\d(?=[ -](?![\d-])|$)", re.MULTILINE)

# RFC 3463 section 3: the subject and detail of each code, as MTAs word them; the
# specific ones first (Postfix words a full mailbox "Recipient address rejected: ...").
_PHRASES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (detail, re.compile(pattern, re.IGNORECASE))
    for detail, pattern in (
        # X.2.1 mailbox disabled
        (
            "2.1",
            (
                r"(mailbox|account|user|address) (is )?(has been )?"
                r"(disabled|inactive|suspended|deactivated|closed|locked)"
            ),
        ),
        # X.2.2 mailbox full
        (
            "2.2",
            (
                r"mailbox (is )?full|over ?quota|quota exceeded|exceeded (the |his |her )?"
                r"(storage|quota)|mailbox size limit|insufficient (storage|quota)"
            ),
        ),
        # X.3.4 message too big for system
        (
            "3.4",
            (
                r"message (size )?(is )?too (big|large)|message size exceeds|"
                r"exceeds (the )?(maximum|size limit|message size)"
            ),
        ),
        # X.4.6 routing loop detected
        ("4.6", r"mail(ing)? loop|routing loop|too many (hops|\"?received\"? headers)"),
        # X.4.7 delivery time expired
        (
            "4.7",
            (
                r"retry time(out)? (not reached|exceeded)|delivery time expired|message expired|"
                r"could not be delivered within|too long in (the )?queue"
            ),
        ),
        # X.1.2 bad destination system address
        (
            "1.2",
            (
                r"unrouteable|unroutable|host (or domain name )?not found|host unknown|"
                r"unknown host|domain (not found|does not exist|doesn't exist)|no mx|"
                r"name or service not known|mx records point to non-existent hosts|"
                r"host address lookups failed|no (such )?domain"
            ),
        ),
        # X.1.1 bad destination mailbox address
        (
            "1.1",
            (
                r"user unknown|unknown user|no such (user|mailbox|recipient|account)|"
                r"(mailbox|user|recipient|account|address)( \S+)? (does not|doesn't) exist|"
                r"(mailbox|user|recipient|account) (not found|unknown|unavailable)|"
                r"unknown (local[- ]part|recipient|mailbox|address)|invalid (mailbox|recipient)|"
                r"recipient address rejected|address (rejected|not found)|not our customer"
            ),
        ),
        # X.7.1 delivery not authorized, message refused
        (
            "7.1",
            (
                r"relay(ing)? (access )?(denied|not permitted|prohibited)|"
                r"blocked|blacklisted|blocklisted|denied by policy|rejected (for|due to) policy|"
                r"spam"
            ),
        ),
    )
)


def enhanced_status(text: str) -> str | None:
    """The first RFC 3463 status code quoted in ``text`` (failure classes only), or None."""
    found = _ENHANCED.search(text)
    return found.group(1) if found else None


def status_from_text(text: str, *, is_permanent: bool) -> str | None:
    """The RFC 3463 status ``text`` states or implies, or None when it says nothing.

    A quoted enhanced code wins; then an MTA's wording of a known failure (the class
    taken from the SMTP reply code beside it, else from ``is_permanent``); then a bare
    SMTP reply code as X.0.0.
    """
    quoted = enhanced_status(text)
    if quoted is not None:
        return quoted
    reply = _REPLY_CODE.search(text)
    klass = reply.group(1) if reply else ("5" if is_permanent else "4")
    for detail, pattern in _PHRASES:
        if pattern.search(text):
            return f"{klass}.{detail}"
    return f"{klass}.0.0" if reply else None
