"""Group commit: concurrent deliveries share a transaction; each answer follows its commit."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import pytest

from ingest.sources.group_commit import GroupCommit

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ingest.sources.group_commit import Delivery


class FakeStore:
    """Commits batches; the first one is held until released, so others pile up behind it."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.release = threading.Event()
        self.fail = False

    def commit_many(self, deliveries: Sequence[Delivery]) -> list[int]:
        """Store one batch; returns ids numbered on from the previous batches."""
        if not self.batches:
            self.release.wait(5)
        if self.fail:
            raise RuntimeError("disk full")
        self.batches.append([d.raw for d in deliveries])
        start = sum(map(len, self.batches[:-1]))
        return list(range(start + 1, start + len(deliveries) + 1))


async def _send(group: GroupCommit, store: FakeStore, count: int) -> list[int]:
    first = asyncio.create_task(group.commit(b"m0", "", []))
    await asyncio.sleep(0.05)  # the first batch is committing now
    rest = [asyncio.create_task(group.commit(f"m{i}".encode(), "", [])) for i in range(1, count)]
    await asyncio.sleep(0.05)
    store.release.set()
    return await asyncio.gather(first, *rest)


def test_deliveries_waiting_behind_a_commit_share_the_next_one() -> None:
    """Messages arriving during one commit go together in the next, each with its own id."""
    store = FakeStore()
    ids = asyncio.run(_send(GroupCommit(store.commit_many), store, 6))
    assert store.batches == [[b"m0"], [b"m1", b"m2", b"m3", b"m4", b"m5"]]
    assert ids == [1, 2, 3, 4, 5, 6]


def test_batches_are_capped() -> None:
    """No batch holds more than ``max_batch`` deliveries."""
    store = FakeStore()
    asyncio.run(_send(GroupCommit(store.commit_many, max_batch=2), store, 6))
    assert [len(b) for b in store.batches] == [1, 2, 2, 1]


def test_a_failed_commit_fails_every_delivery_in_it() -> None:
    """When the transaction fails, every waiting session gets the error (and answers 451)."""
    store = FakeStore()
    store.fail = True
    with pytest.raises(RuntimeError, match="disk full"):
        asyncio.run(_send(GroupCommit(store.commit_many), store, 3))
