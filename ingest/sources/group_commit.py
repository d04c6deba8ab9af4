"""Group commit: concurrent SMTP deliveries share one transaction and one fsync."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


@dataclass(frozen=True)
class Delivery:
    """One message as the SMTP session received it, waiting for its commit."""

    raw: bytes
    mail_from: str
    rcpt_to: list[str]


class GroupCommit:
    """Commits deliveries in batches: one runs while the next gathers (as databases' WAL do).

    Each caller's future resolves only after the transaction holding its message has
    committed, so every 250 still follows a durable commit (invariant 1); a failed batch
    fails every caller in it, and each answers 451.
    """

    def __init__(
        self, commit_many: Callable[[Sequence[Delivery]], list[int]], max_batch: int = 64
    ) -> None:
        self._commit_many = commit_many
        self._max_batch = max_batch
        self._waiting: list[tuple[Delivery, asyncio.Future[int]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def commit(self, raw: bytes, mail_from: str, rcpt_to: list[str]) -> int:
        """Commit one delivery (with whatever else is waiting); returns its inbound id."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((Delivery(raw, mail_from, rcpt_to), future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[tuple[Delivery, asyncio.Future[int]]]) -> None:
        try:
            ids = await asyncio.to_thread(self._commit_many, [d for d, _ in batch])
        except Exception as exc:  # noqa: BLE001 - handed to every waiting session, which answers 451
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), inbound_id in zip(batch, ids, strict=True):
            if not future.done():  # a session that went away meanwhile cancelled its future
                future.set_result(inbound_id)
