"""Which case a message answers: message ids first, then the subject's case token."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ingest.mime.parsed import ParsedMail


@dataclass(frozen=True, slots=True)
class CaseToken:
    """How case references appear in subjects: ``[#1042]`` with prefix ``#``."""

    prefix: str = "#"

    @property
    def pattern(self) -> re.Pattern[str]:
        """The regular expression that finds the token's number."""
        return re.compile(r"\[\s*" + re.escape(self.prefix) + r"\s*(\d{1,12})\s*\]")

    def render(self, ref: int) -> str:
        """The token for case ``ref``."""
        return f"[{self.prefix}{ref}]"

    def refs_in(self, subject: str) -> list[int]:
        """Case references named in ``subject``, in order of appearance."""
        return [int(m.group(1)) for m in self.pattern.finditer(subject)]

    def subject_with_token(self, ref: int, subject: str) -> str:
        """``subject`` carrying the token once (added at the end when absent)."""
        if ref in self.refs_in(subject):
            return subject
        clean = subject.strip() or "(no subject)"
        return f"{clean} {self.render(ref)}"


def referenced_ids(mail: ParsedMail) -> list[str]:
    """Message-IDs this mail replies to, most direct first (In-Reply-To, then References)."""
    seen: dict[str, None] = {}
    for mid in (*mail.in_reply_to, *reversed(mail.references)):
        seen.setdefault(mid, None)
    return list(seen)


def is_participant(
    address: str,
    *,
    customer_address: str,
    participants: Iterable[str],
    customer_domains: Iterable[str] = (),
    agent: bool = False,
) -> bool:
    """Whether ``address`` may write into a case by its subject token alone.

    A stranger who quotes a case number must not join another customer's case:
    only the customer, someone the case has copied, an agent, or someone at a
    domain configured for the case's customer may. A sender's own domain is not
    enough by itself: everyone at a webmail provider shares it.
    """
    key = address.lower()
    if agent or key == customer_address.lower():
        return True
    if key in {p.lower() for p in participants}:
        return True
    domain = key.rpartition("@")[2]
    return any(domain == d or domain.endswith("." + d) for d in customer_domains)


C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)


class ThreadHit(Protocol[C_co]):
    """A stored message carrying a referenced Message-ID (``storage.cases.ThreadHit``)."""

    @property
    def message_id(self) -> str:
        """The Message-ID."""

    @property
    def ours(self) -> bool:
        """Whether it is an outgoing message of ours (an id we generated)."""

    @property
    def row_id(self) -> int:
        """Storage order: the first copy of an id has the lowest."""

    @property
    def case(self) -> C_co:
        """The case the message is on."""


def choose_thread(
    ids: Sequence[str], hits: Iterable[ThreadHit[C]], may_join: Callable[[C], bool]
) -> C | None:
    """The case a mail answers by its referenced ids, or None.

    Who is trusted, on what evidence:

    - the ids are tried in the mail's own order (In-Reply-To, then References from the
      newest), so the message it answers directly decides, not the newest stored row;
    - an id we generated (our acknowledgement, relay or notice: random, sent only to the
      case's people) is proof enough that the sender got our mail;
    - any other id (the customer's own Message-ID, which anyone may copy) counts only
      for a sender who may join the case (``may_join``: the customer, a participant,
      an agent), exactly as the subject token does;
    - of several stored copies of one id, the first stored wins: a later mail reusing
      someone's Message-ID never takes their thread over.
    """
    by_id: dict[str, list[ThreadHit[C]]] = {}
    for hit in hits:
        by_id.setdefault(hit.message_id, []).append(hit)
    for mid in ids:
        found = by_id.get(mid)
        if not found:
            continue
        ours = [h for h in found if h.ours]
        if ours:
            return min(ours, key=lambda h: h.row_id).case
        first = min(found, key=lambda h: h.row_id)
        if may_join(first.case):
            return first.case
    return None
