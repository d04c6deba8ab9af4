"""Mailing-list mail: the list's headers, old-style lists' marks, and list robots.

A list post is recognised by

- RFC 2369 and RFC 2919 headers (``List-Id``, ``List-Post``, ``List-Unsubscribe`` ...),
  ``Precedence: list``, and the list managers' own (``Mailing-List`` of ezmlm and Google
  Groups, ``X-Mailing-List`` of SmartList and vger, ``X-BeenThere`` and
  ``X-Mailman-Version`` of Mailman 2, ``X-ML-Name`` of fml);
- the marks of old-style lists (Majordomo, LISTSERV, SmartList) that predate those
  headers: bulk or list precedence sent by a list robot, that is ``Sender``, ``Errors-To``
  or ``X-Loop`` naming a list's administrative address (``owner-users@``, ``users-owner@``,
  ``users-request@``, ``users-bounces@``, ``majordomo@`` ...).

A list whose ``List-Post`` or ``List-Id`` names our own support address (support@ run as
a Google Group or a Mailman list) is how customers reach us, not a list: ``is_our_list``.
"""

from __future__ import annotations

import re
from email.utils import getaddresses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.mime.parsed import ParsedMail

__all__ = ["is_list_robot", "is_our_list", "list_reason"]

_LIST_HEADERS = (
    "List-Id",
    "List-Unsubscribe",
    "List-Post",
    "List-Help",
    "List-Subscribe",
    "List-Archive",
    "List-Owner",
    "Mailing-List",
    "X-Mailing-List",
    "X-BeenThere",
    "X-Mailman-Version",
    "X-ML-Name",
)
_ROBOT_HEADERS = ("Sender", "Errors-To", "X-Loop")
_BULK = frozenset({"bulk", "list", "junk"})
# The administrative addresses list managers send from (Majordomo, LISTSERV, Mailman,
# ezmlm, mlmmj, SmartList, Google Groups).
_ROBOT_LOCAL_PART = re.compile(
    r"^(owner-.+|.+[-+](owner|owners|request|bounce|bounces|errors|admin)(\+.*)?|"
    r"majordomo|listserv|listproc|mailman|ezmlm|mlmmj|smartlist|sympa)$",
    re.IGNORECASE,
)
_LIST_ID = re.compile(r"<([^<>\s]+)>")
_MAILTO = re.compile(r"<mailto:([^<>?\s]+)", re.IGNORECASE)


def list_reason(mail: ParsedMail) -> str | None:
    """Name the list header or old-style list mark ``mail`` carries, or None."""
    for name in _LIST_HEADERS:
        value = mail.header(name)
        if value is not None:
            return f"{name.lower()}={value.strip()[:80]}"
    precedence = (mail.header("Precedence") or "").strip().lower()
    if precedence == "list":
        return "precedence=list"
    if precedence not in _BULK:
        return None
    for name in _ROBOT_HEADERS:
        robot = next((a for a in _addresses(mail.header_all(name)) if is_list_robot(a)), None)
        if robot is not None:
            return f"precedence={precedence} from list robot ({name.lower()}={robot})"
    return None


def is_list_robot(address: str) -> bool:
    """True for a list manager's administrative address (owner-x@, x-request@ ...)."""
    local = address.rpartition("@")[0] if "@" in address else address
    return bool(_ROBOT_LOCAL_PART.match(local.strip()))


def is_our_list(mail: ParsedMail, own_addresses: frozenset[str]) -> bool:
    """True when ``List-Post`` or ``List-Id`` names one of our own addresses.

    RFC 2919 builds a list's identifier from its address, as Google Groups and Mailman
    do (``support@example.com`` is ``<support.example.com>``).
    """
    own = {a.strip().lower() for a in own_addresses}
    posts = _MAILTO.findall(mail.header("List-Post") or "")
    if any(post.lower() in own for post in posts):
        return True
    ids = {f"{local}.{domain}" for local, _, domain in (a.partition("@") for a in own)}
    return any(found.lower() in ids for found in _LIST_ID.findall(mail.header("List-Id") or ""))


def _addresses(values: list[str]) -> list[str]:
    return [addr for _, addr in getaddresses(values) if addr]
