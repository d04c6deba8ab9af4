"""The IMAP source: polls or IDLEs on a mailbox; commits each fetched chunk, then moves it."""

from __future__ import annotations

import asyncio
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import parseaddr
from typing import TYPE_CHECKING

import structlog

from ingest.sources.lease_owner import is_dead_local_owner
from ingest.sources.mailbox import MailboxError, MailboxLoginError
from ingest.sources.oauth2 import (
    TOKEN_EXPIRY_WARNING,
    OAuth2TokenSource,
    read_oauth2_token,
    token_expires_at,
)
from storage.mailboxes import (
    LeaseLostError,
    add_received,
    advance,
    lease_holder,
    release_lease,
    stored_source_refs,
    stored_uidvalidity,
    sync_uidvalidity,
    take_lease,
    take_over_lease,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from concurrent.futures import Future
    from email.message import Message

    from sqlalchemy.orm import Session, sessionmaker

    from ingest.sources.imap_settings import ImapSettings
    from ingest.sources.mailbox import Mailbox

    # A chunk being committed in the helper thread: its commit, and its UIDs to move after.
    _Committing = tuple[Future[int], list[int]]

log = structlog.get_logger("mail2case.imap")

SOURCE = "imap"
# A chunk (one FETCH, one transaction, one MOVE) holds at most batch_size messages and
# bodies under this many bytes, or a single message up to max_message_size. Two chunks
# are in memory at once (one committing, the next fetched): 2 x 32 MB, the former 64 MB.
FETCH_BUDGET_BYTES = 32 * 1024 * 1024
# How long an IDLE lasts before the folder is looked at again (see ``_idle``).
IDLE_RECHECK_SECONDS = 5.0
# The end of the header block: the first empty line (CRLF or bare LF line ends).
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
# Re-exported: the IMAP source's public names, wherever they live.
__all__ = [
    "TOKEN_EXPIRY_WARNING",
    "Backoff",
    "LeaseLostError",
    "MailboxPoller",
    "OAuth2TokenSource",
    "read_oauth2_token",
    "token_expires_at",
]


@dataclass(frozen=True)
class Backoff:
    """Retry delay as an immutable value (urllib3 ``Retry`` style): ``next()`` is the next step.

    The ceiling doubles from ``base_seconds`` up to ``cap_seconds``; the delay is drawn from
    its upper half, so a refused password never retries in a tight loop yet mailboxes
    that failed together drift apart.
    """

    attempt: int = 0
    base_seconds: float = 1.0
    cap_seconds: float = 300.0

    def next(self) -> Backoff:
        """The backoff after one more failure."""
        return replace(self, attempt=self.attempt + 1)

    def reset(self) -> Backoff:
        """The backoff after a success."""
        return replace(self, attempt=0)

    def ceiling(self) -> float:
        """The longest delay at this step, in seconds."""
        return min(self.cap_seconds, self.base_seconds * 2.0 ** min(self.attempt, 32))

    def delay(self, rng: random.Random) -> float:
        """A jittered delay in ``[ceiling / 2, ceiling]`` seconds."""
        top = self.ceiling()
        return rng.uniform(top / 2, top)


# --- the poller ----------------------------------------------------------------------


def _headers(raw: bytes) -> Message:
    # Only the header block: parsing the whole message would decode and copy every body.
    blank = _BLANK_LINE.search(raw)
    head = raw if blank is None else raw[: blank.end()]
    return BytesHeaderParser(policy=default_policy).parsebytes(head)


def return_path(headers: Message) -> str:
    """The envelope sender from the Return-Path header the delivering server added, or ""."""
    value = headers.get("Return-Path")
    return parseaddr(str(value))[1] if value is not None else ""


def _fetch_groups(uids: Sequence[int], sizes: dict[int, int]) -> Iterator[list[int]]:
    """Split ``uids`` so that each group's bodies stay under the fetch budget."""
    group: list[int] = []
    total = 0
    for uid in uids:
        if group and total + sizes[uid] > FETCH_BUDGET_BYTES:
            yield group
            group, total = [], 0
        group.append(uid)
        total += sizes[uid]
    if group:
        yield group


class MailboxPoller:
    """Reads one mailbox: commits each fetched chunk, then moves or flags it (invariant 1)."""

    def __init__(
        self,
        settings: ImapSettings,
        mailbox_factory: Callable[[], Mailbox],
        sessions: sessionmaker[Session],
        wake: Callable[[], None],
        owner: str,
        *,
        backoff: Backoff | None = None,
        idle_slice_seconds: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.mailbox_factory = mailbox_factory
        self.sessions = sessions
        self.wake = wake
        self.owner = owner
        self.backoff = backoff or Backoff()
        self.idle_slice_seconds = idle_slice_seconds
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.has_lease = False
        self._box: Mailbox | None = None
        self._swept = False  # a fresh connection first sweeps below last_uid too
        self._lease_renewed_at = float("-inf")
        self._uidnext = 0  # UIDNEXT at the last pass's SELECT
        # run_once works in a worker thread under run(); asyncio events are not thread-safe.
        self._notify = wake

    def run_once(self, now: datetime) -> int:
        """One pass: lease, connect, select, ingest what is new; returns messages handled."""
        if not self._renew_lease(now):
            self.close()
            return 0
        box = self._connected()
        uidvalidity, self._uidnext = box.select(self.settings.folder)
        with self.sessions.begin() as s:
            before = stored_uidvalidity(s, self.settings.name)
            last_uid = sync_uidvalidity(s, self.settings.name, uidvalidity, now)
            if before is not None and before != uidvalidity:
                log.warning("imap.uidvalidity_changed", old=before, new=uidvalidity)
        # After a reconnect, also sweep up messages committed but not yet moved or
        # flagged (a crash between the two): they sit at or below last_uid.
        uids = box.unprocessed(last_uid if self._swept else 0)
        handled = self._ingest(box, uidvalidity, uids, now)
        self._swept = True
        return handled

    def _renew_lease(self, now: datetime) -> bool:
        ttl = timedelta(seconds=self.settings.lease_seconds)
        with self.sessions.begin() as s:
            held = take_lease(s, self.settings.name, self.owner, now, ttl)
            if not held:
                held = self._take_over_from_dead(s, now, ttl)
        if held != self.has_lease:
            event = "imap.lease_taken" if held else "imap.lease_held_elsewhere"
            log.info(event, owner=self.owner)
        self.has_lease = held
        self._lease_renewed_at = time.monotonic()
        return held

    def _take_over_from_dead(self, s: Session, now: datetime, ttl: timedelta) -> bool:
        """After a crash of this host's earlier instance, take its lease at once."""
        holder = lease_holder(s, self.settings.name)
        if holder is None or not is_dead_local_owner(holder):
            return False
        taken = take_over_lease(
            s, self.settings.name, dead=holder, owner=self.owner, now=now, ttl=ttl
        )
        if taken:
            log.warning("imap.lease_taken_over", previous_owner=holder, owner=self.owner)
        return taken

    def _connected(self) -> Mailbox:
        if self._box is None:
            box = self.mailbox_factory()
            box.connect()
            self._box, self._swept = box, False
            s = self.settings
            log.info("imap.connected", host=s.host, port=s.port, tls=s.tls, folder=s.folder)
        return self._box

    def _ingest(self, box: Mailbox, uidvalidity: int, uids: Sequence[int], now: datetime) -> int:
        """Fetch, commit and move ``uids`` chunk by chunk; returns how many were handled.

        While chunk n commits in a helper thread (database I/O), chunk n+1 is fetched (socket
        I/O) and then chunk n moved: the waits overlap. Chunk n+1's commit starts only once
        n's has succeeded, so last_uid never passes an uncommitted message.
        """
        handled = 0
        limit = self.settings.max_message_size
        size = self.settings.batch_size
        committing: _Committing | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-commit") as committer:
            for i in range(0, len(uids), size):
                batch = uids[i : i + size]
                sizes = box.sizes(batch)  # a UID missing here was expunged by someone else
                fits = [u for u in batch if u in sizes and sizes[u] <= limit]
                for group in _fetch_groups(fits, sizes):
                    raws = box.fetch(group)
                    chunk = [(u, raws[u]) for u in group if u in raws]
                    del raws
                    previous = committing
                    if previous is not None:
                        previous[0].result()  # raises: chunk n is not moved, n+1 not committed
                    # The helper thread logs too: it gets this thread's bound log context.
                    job = copy_context().run
                    committing = (
                        committer.submit(job, self._commit, uidvalidity, chunk, now),
                        [u for u, _raw in chunk],
                    )
                    handled += self._move_committed(box, previous)
                too_large = [u for u in batch if sizes.get(u, 0) > limit]
                if too_large:
                    # Setting them aside advances last_uid: every chunk before must be committed.
                    handled += self._move_committed(box, committing)
                    committing = None
                    self._set_aside(box, too_large, sizes, now)
                    handled += len(too_large)
            handled += self._move_committed(box, committing)
        return handled

    def _move_committed(self, box: Mailbox, committing: _Committing | None) -> int:
        """Once a chunk's commit is done (its error propagates), move it in one command."""
        if committing is None:
            return 0
        commit, uids = committing
        if commit.result():  # some of it was new: processing has work
            self._notify()
        box.mark_processed(uids)
        return len(uids)

    def _commit(self, uidvalidity: int, chunk: Sequence[tuple[int, bytes]], now: datetime) -> int:
        """Store a fetched chunk in one transaction, skipping what a previous pass stored.

        Returns how many messages were new. A previous pass may have committed some of
        them and died before moving them: their source_ref (UIDVALIDITY/UID) finds them.
        """
        if not chunk:
            return 0
        name = self.settings.name
        refs = {uid: f"{name}:{uidvalidity}:{uid}" for uid, _raw in chunk}
        headers = {uid: _headers(raw) for uid, raw in chunk}
        with self.sessions.begin() as s:
            found = stored_source_refs(s, SOURCE, refs.values())
            new = [
                (refs[u], return_path(headers[u]), raw) for u, raw in chunk if refs[u] not in found
            ]
            added = add_received(s, SOURCE, now, new)
            advance(s, name, self.owner, max(refs), now)
        # Logged only once committed: "received" must never name a row that was rolled back.
        for uid, raw in chunk:
            ref = refs[uid]
            log.info(
                "message.already_stored" if ref in found else "message.received",
                source=SOURCE,
                inbound_id=found.get(ref) or added[ref],
                uid=uid,
                size=len(raw),
                message_id=str(headers[uid].get("Message-ID", "")),
            )
        return len(chunk) - len(found)

    def _set_aside(
        self, box: Mailbox, uids: Sequence[int], sizes: dict[int, int], now: datetime
    ) -> None:
        box.mark_too_large(uids)
        with self.sessions.begin() as s:
            advance(s, self.settings.name, self.owner, max(uids), now)
        for uid in uids:
            log.warning(
                "imap.message_too_large",
                uid=uid,
                size=sizes[uid],
                max_message_size=self.settings.max_message_size,
            )

    def close(self, *, release: bool = False) -> None:
        """Log out (never raises); with ``release``, also give up the lease."""
        box, self._box, self._swept = self._box, None, False
        if box is not None:
            box.logout()
        if release and self.has_lease:
            with self.sessions.begin() as s:
                release_lease(s, self.settings.name, self.owner, datetime.now(UTC))
            self.has_lease = False

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop``: a pass, then IDLE or a sleep; failures back off, never raise."""
        backoff = self.backoff
        loop = asyncio.get_running_loop()

        def notify() -> None:
            loop.call_soon_threadsafe(self.wake)

        self._notify = notify
        with structlog.contextvars.bound_contextvars(mailbox=self.settings.name, source=SOURCE):
            while not stop.is_set():
                try:
                    handled = await asyncio.to_thread(self.run_once, datetime.now(UTC))
                    backoff = backoff.reset()
                    if not handled:  # after work, look again at once: more may be waiting
                        await self._wait_for_mail(stop)
                except Exception as exc:  # noqa: BLE001 - loop boundary: log, close, back off
                    delay = self._report_failure(exc, backoff)
                    await asyncio.to_thread(self.close)
                    await _sleep(stop, delay)
                    backoff = backoff.next()
            await asyncio.to_thread(self._close_quietly)

    def _report_failure(self, exc: Exception, backoff: Backoff) -> float:
        delay = backoff.delay(self.rng)
        step = {"attempt": backoff.attempt + 1, "retry_in": round(delay, 2)}
        if isinstance(exc, MailboxLoginError):
            log.warning("imap.login_failed", reason=exc.reason, **step)
        elif isinstance(exc, MailboxError):
            log.warning("imap.connection_failed", reason=exc.reason, **step)
        elif isinstance(exc, LeaseLostError):
            log.warning("imap.lease_lost", owner=self.owner, **step)
        else:
            log.error("imap.pass_failed", error=type(exc).__name__, exc_info=exc, **step)
        return delay

    def _close_quietly(self) -> None:
        try:
            self.close(release=True)
        except Exception:  # shutting down: the lease simply expires instead
            log.warning("imap.lease_release_failed", exc_info=True)

    async def _wait_for_mail(self, stop: asyncio.Event) -> None:
        s = self.settings
        box = self._box
        if box is None or not self.has_lease:
            await _sleep(stop, min(s.poll_interval_seconds, s.lease_seconds / 2))
        elif s.idle and await asyncio.to_thread(box.has_idle):
            if await asyncio.to_thread(self._is_quiet, box):
                await self._idle(stop, box)
        else:
            await self._pause(stop, s.poll_interval_seconds)

    def _is_quiet(self, box: Mailbox) -> bool:
        """Whether nothing arrived since the pass's SELECT, so IDLE will announce what comes.

        Dovecot reports mail that arrives during a SEARCH, FETCH or MOVE in that command's
        response, and not again in IDLE; a fresh SELECT resynchronises the view first.
        """
        _uidvalidity, uidnext = box.select(self.settings.folder)
        return uidnext == self._uidnext

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep between polls, renewing the lease so it never lapses while we hold it."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            await _sleep(stop, min(left, self.settings.lease_seconds / 3))
            if not await self._keep_lease():
                return

    async def _keep_lease(self) -> bool:
        """Renew the lease once a third of it has passed; False when another instance has it."""
        if time.monotonic() - self._lease_renewed_at < self.settings.lease_seconds / 3:
            return True
        return await asyncio.to_thread(self._renew_lease, datetime.now(UTC))

    async def _idle(self, stop: asyncio.Event, box: Mailbox) -> None:
        """IDLE in short slices (stop is noticed quickly) until mail, timeout or stop.

        Every ``IDLE_RECHECK_SECONDS`` it leaves IDLE to look again (a SELECT): a message
        that came while the last look ran may never be announced (seen in CI: one of
        eight runs of the IDLE test lost its second message for the whole timeout), and
        the next look sees it by its UIDNEXT. So no mail waits longer than that.
        """
        deadline = time.monotonic() + self.settings.idle_timeout_seconds
        recheck_at = time.monotonic() + IDLE_RECHECK_SECONDS
        idling = False
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if not idling:
                await asyncio.to_thread(box.idle_start)
                idling = True
            if await asyncio.to_thread(box.idle_wait, min(self.idle_slice_seconds, left)):
                break
            if not await self._keep_lease():
                break
            if time.monotonic() >= recheck_at:
                await asyncio.to_thread(box.idle_done)
                idling = False
                if not await asyncio.to_thread(self._is_quiet, box):
                    return  # mail came unannounced: the next pass takes it
                recheck_at = time.monotonic() + IDLE_RECHECK_SECONDS
        if idling:
            await asyncio.to_thread(box.idle_done)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set, whichever comes first."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
    except TimeoutError:
        return
