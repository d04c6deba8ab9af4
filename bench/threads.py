"""What the seeded mix should become (threads, replies), and how a side's result compares.

Each side of a benchmark reports where it put every message (Message-ID → the id of the
case, ticket or thread that holds it) and how many acknowledgements it queued; ``check``
compares that with the thread structure read from the mix's own headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from storage.engine import make_engine, session_factory
from storage.models import Message, Outbox

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_ID = re.compile(r"<([^<>]+)>")


def bare_id(value: str | None) -> str:
    """A Message-ID without its angle brackets or surrounding space ("" when absent)."""
    if not value:
        return ""
    found = _ID.search(value)
    return found.group(1) if found else value.strip()


@dataclass(frozen=True)
class Expected:
    """The mix's threads: each message's Message-ID and the Message-ID of its thread's root."""

    root_of: dict[str, str]

    @property
    def threads(self) -> int:
        """How many messages start a thread (no In-Reply-To to an earlier mail)."""
        return sum(mid == root for mid, root in self.root_of.items())

    @property
    def replies(self) -> int:
        """How many messages answer an earlier mail of the mix."""
        return len(self.root_of) - self.threads


def expected(mix: Sequence[bytes]) -> Expected:
    """The thread structure of ``mix``, read from Message-ID and In-Reply-To."""
    parser = BytesHeaderParser()
    root_of: dict[str, str] = {}
    for raw in mix:
        head = parser.parsebytes(raw)
        mid, parent = bare_id(head["Message-ID"]), bare_id(head["In-Reply-To"])
        root_of[mid] = root_of.get(parent, mid) if parent else mid
    return Expected(root_of)


@dataclass(frozen=True)
class Verdict:
    """One side's result against the mix: threads opened, replies threaded, acks queued."""

    side: str
    placed: int
    messages: int
    threads: int
    expected_threads: int
    replies_threaded: int
    expected_replies: int
    acks: int
    acks_are: str = "acks queued"

    @property
    def ok(self) -> bool:
        """Every message placed, one thread per root, every reply in its root's thread."""
        return (
            self.placed == self.messages
            and self.threads == self.expected_threads
            and self.replies_threaded == self.expected_replies
        )

    def line(self) -> str:
        """One line for the reader."""
        verdict = "ok" if self.ok else "WRONG"
        return (
            f"{self.side}: {self.placed}/{self.messages} messages placed, "
            f"{self.threads}/{self.expected_threads} threads opened, "
            f"{self.replies_threaded}/{self.expected_replies} replies threaded, "
            f"{self.acks} {self.acks_are} -> {verdict}"
        )


def check(
    side: str, want: Expected, placed: Mapping[str, int], acks: int, acks_are: str = "acks queued"
) -> Verdict:
    """Compare where ``side`` put each message (bare Message-ID → group id) with ``want``."""
    roots = {mid for mid, root in want.root_of.items() if mid == root}
    known = {mid: placed[mid] for mid in want.root_of if mid in placed}
    threaded = sum(
        1
        for mid, root in want.root_of.items()
        if mid != root and mid in known and known.get(root) == known[mid]
    )
    # A thread counts once, and only when its root opened it: a root placed into another
    # root's thread would show as one thread fewer.
    return Verdict(
        side=side,
        placed=len(known),
        messages=len(want.root_of),
        threads=len({known[mid] for mid in roots if mid in known}),
        expected_threads=len(roots),
        replies_threaded=threaded,
        expected_replies=len(want.root_of) - len(roots),
        acks=acks,
        acks_are=acks_are,
    )


def mail2case_placed(url: str) -> tuple[dict[str, int], int]:
    """Inbound messages' bare Message-IDs → case ids in mail2case's database, and its acks."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            rows = s.execute(
                select(Message.message_id, Message.case_id).where(Message.direction == "in")
            ).all()
            acks = s.execute(select(func.count()).where(Outbox.kind == "ack")).scalar_one()
    finally:
        engine.dispose()
    return {bare_id(mid): case_id for mid, case_id in rows}, int(acks)
