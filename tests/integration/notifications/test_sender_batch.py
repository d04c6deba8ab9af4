"""Claims and outcomes in batches: few commits, exact breaker counts, retries stop the pass."""

from __future__ import annotations

import math
import os
import random
import stat
import time
from datetime import timedelta
from email import message_from_bytes
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from sqlalchemy import event, select
from structlog.testing import capture_logs

from notifications.breaker import BreakerSettings
from notifications.errors import TemporaryTransportError
from notifications.render import build_environment
from notifications.sender import Sender
from notifications.transports import MaildirTransport
from storage.models import Case, Outbox
from tests.integration.notifications.test_sender import NOW, SETTINGS, enqueue

if TYPE_CHECKING:
    from collections.abc import Sequence
    from email.message import EmailMessage
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

    from notifications.transports import Transport

LEASE = timedelta(minutes=2)


class Commits:
    """Counts the engine's commits; ``at_send`` notes the count at each delivery."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.count = 0
        event.listen(sessions.kw["bind"], "commit", self._seen)

    def _seen(self, _connection: Any) -> None:
        self.count += 1


class Noting:
    """Accepts every mail (unless told to fail one), noting its To and the commits so far.

    Two mails delivered with the same count of commits before them were in one batch.
    """

    def __init__(
        self, commits: Commits, *, fail: set[str] | None = None, pause: float = 0.0
    ) -> None:
        self.commits = commits
        self.fail = fail or set()
        self.pause = pause
        self.sent: list[tuple[str, int]] = []

    def send(self, msg: EmailMessage, *, from_addr: str, to_addrs: Sequence[str]) -> None:
        """Note ``msg`` as delivered, or raise a temporary error for a To in ``fail``."""
        del from_addr
        time.sleep(self.pause)
        if to_addrs[0] in self.fail:
            self.fail.discard(to_addrs[0])
            raise TemporaryTransportError("451 try again later")
        self.sent.append((str(msg["To"]), self.commits.count))


def sender(
    sessions: sessionmaker[Session],
    transport: Transport,
    *,
    claim_batch: int = 16,
    breaker: BreakerSettings | None = None,
    lease: timedelta = LEASE,
) -> Sender:
    """A sender with the given batch, lease and breaker."""
    settings = type(SETTINGS)(**{**SETTINGS.__dict__, "breaker": breaker or BreakerSettings()})
    log = structlog.get_logger("test.sender")
    return Sender(
        sessions,
        transport,
        build_environment(),
        settings,
        log,
        rng=random.Random(1),
        lease=lease,
        claim_batch=claim_batch,
    )


def queue(
    sessions: sessionmaker[Session], n: int, to: str, case_id: int | None = None, kind: str = "ack"
) -> None:
    """Row ``n`` of a test, due ``n`` seconds after NOW (so the order is known)."""
    enqueue(
        sessions,
        key=f"k{n}",
        message_id=f"<k{n}@example.com>",
        to_addrs=[to],
        case_id=case_id,
        kind=kind,
        now=NOW + timedelta(seconds=n),
    )


def new_case(sessions: sessionmaker[Session], ref: int) -> int:
    """A case's id."""
    with sessions.begin() as s:
        case = Case(
            ref=ref,
            priority="high",
            plan="standard",
            customer_address="ann@customer.example",
            opened_at=NOW,
            updated_at=NOW,
        )
        s.add(case)
        s.flush()
        return case.id


def rows(sessions: sessionmaker[Session]) -> list[Outbox]:
    """Every outbox row, in id order."""
    with sessions() as s:
        return list(s.scalars(select(Outbox).order_by(Outbox.id)))


@pytest.mark.parametrize(("n", "claim_batch"), [(40, 16), (16, 16), (5, 1)])
def test_a_pass_commits_once_per_batch_and_once_more(
    sessions: sessionmaker[Session], tmp_path: Path, n: int, claim_batch: int
) -> None:
    """N rows to distinct recipients cost ceil(N / claim_batch) + 1 commits, not N + 1."""
    for i in range(n):
        queue(sessions, i, f"c{i}@customer.example")
    commits = Commits(sessions)
    transport = MaildirTransport(tmp_path / "out")
    later = NOW + timedelta(minutes=1)
    assert sender(sessions, transport, claim_batch=claim_batch).run_once(later) == n
    assert commits.count == math.ceil(n / claim_batch) + 1
    assert {r.status for r in rows(sessions)} == {"sent"}


def test_a_claim_loads_only_the_rows_its_batch_takes(sessions: sessionmaker[Session]) -> None:
    """Distinct recipients: each claim of 4 loads 4 rows, not its scan bound of 16.

    Every row is loaded twice in all: by the claim that takes it, and again by the
    next transaction, which records its outcome. (A scan of 16 at each claim loaded
    16 + 16 + 12 + 8 + 4 = 56 rows to take these 20.) Collisions still look further:
    see the tests below, whose batches are filled past rows that collide.
    """
    for i in range(20):
        queue(sessions, i, f"c{i}@customer.example")
    loaded: list[str] = []

    def note(row: Outbox, _context: object) -> None:
        loaded.append(row.dedupe_key)

    event.listen(Outbox, "load", note)
    try:
        commits = Commits(sessions)
        transport = Noting(commits)
        assert sender(sessions, transport, claim_batch=4).run_once(NOW + timedelta(minutes=1)) == 20
    finally:
        event.remove(Outbox, "load", note)
    assert [seen for _, seen in transport.sent] == [n // 4 + 1 for n in range(20)]
    assert sorted(loaded) == sorted([f"k{i}" for i in range(20)] * 2)


def test_one_recipient_never_twice_in_a_batch_and_its_limit_holds(
    sessions: sessionmaker[Session],
) -> None:
    """Rows to one first recipient (in any case) go in separate batches; the limit is exact."""
    for i, to in enumerate(["Ann@customer.example", "bob@customer.example"] * 2):
        queue(sessions, i, to)
    queue(sessions, 4, "ann@CUSTOMER.example")
    queue(sessions, 5, "cy@customer.example")
    commits = Commits(sessions)
    transport = Noting(commits)
    breaker = BreakerSettings(per_recipient=2, per_case=100)
    assert sender(sessions, transport, breaker=breaker).run_once(NOW + timedelta(minutes=1)) == 5
    batches: dict[int, list[str]] = {}
    for to, seen in transport.sent:
        batches.setdefault(seen, []).append(to.lower())
    assert all(len(set(tos)) == len(tos) for tos in batches.values())
    assert [len(tos) for tos in batches.values()] == [3, 2]  # not one batch per mail
    assert [(r.status, r.to_addrs[0]) for r in rows(sessions)] == [
        ("sent", "Ann@customer.example"),
        ("sent", "bob@customer.example"),
        ("sent", "Ann@customer.example"),
        ("sent", "bob@customer.example"),
        ("suppressed", "ann@CUSTOMER.example"),
        ("sent", "cy@customer.example"),
    ]


def test_one_case_never_twice_in_a_batch_and_its_limit_holds(
    sessions: sessionmaker[Session],
) -> None:
    """Rows about one case go in separate batches, whatever their recipients; the limit holds."""
    looping, other = new_case(sessions, 1042), new_case(sessions, 1043)
    for i in range(4):
        queue(sessions, i, f"team{i}@support.example", looping, kind="notify")
    queue(sessions, 4, "ops@support.example", other, kind="notify")
    commits = Commits(sessions)
    transport = Noting(commits)
    breaker = BreakerSettings(per_recipient=100, per_case=2)
    assert sender(sessions, transport, breaker=breaker).run_once(NOW + timedelta(minutes=1)) == 3
    assert [seen for _, seen in transport.sent] == [1, 1, 2]  # the other case rode along
    assert [r.status for r in rows(sessions)] == [
        "sent",
        "sent",
        "suppressed",
        "suppressed",
        "sent",
    ]
    assert "per-case limit" in (rows(sessions)[2].last_error or "")


def test_temporary_failure_stops_the_pass_and_gives_the_batch_back(
    sessions: sessionmaker[Session],
) -> None:
    """The rows after a retry in its batch are not sent, and are due again at once."""
    for i in range(4):
        queue(sessions, i, f"c{i}@customer.example")
    commits = Commits(sessions)
    transport = Noting(commits, fail={"c1@customer.example"})
    s = sender(sessions, transport)
    with capture_logs() as logs:
        assert s.run_once(NOW + timedelta(minutes=1)) == 1
    assert [e["event"] for e in logs] == ["outbox.sent", "outbox.retry_scheduled"]
    assert commits.count == 2  # the claim, then the outcomes and the rows given back
    found = rows(sessions)
    assert [(r.status, r.attempts) for r in found] == [
        ("sent", 1),
        ("queued", 1),
        ("queued", 0),
        ("queued", 0),
    ]
    assert found[1].next_attempt_at > NOW + timedelta(minutes=1)  # backing off
    assert [r.next_attempt_at for r in found[2:]] == [
        NOW + timedelta(seconds=2),
        NOW + timedelta(seconds=3),
    ]
    assert s.run_once(NOW + timedelta(minutes=1)) == 2
    assert [to for to, _ in transport.sent] == [f"c{i}@customer.example" for i in (0, 2, 3)]


def test_a_slow_relay_cuts_the_batch_and_the_pass_goes_on(
    sessions: sessionmaker[Session],
) -> None:
    """No row after the first starts once a lease has passed since the claim."""
    for i in range(3):
        queue(sessions, i, f"c{i}@customer.example")
    commits = Commits(sessions)
    transport = Noting(commits, pause=0.06)
    s = sender(sessions, transport, lease=timedelta(milliseconds=50))
    assert s.run_once(NOW + timedelta(minutes=1)) == 3
    assert [seen for _, seen in transport.sent] == [1, 2, 3]  # one row per batch
    assert {r.status for r in rows(sessions)} == {"sent"}


def test_crash_mid_batch_resends_the_delivered_and_delays_the_rest(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Dying mid-batch: the first row waits one lease, the others two; nothing is lost."""
    for i in range(3):
        queue(sessions, i, f"c{i}@customer.example")

    class Crash(BaseException):
        """The process dying."""

    class CrashOnSecond(MaildirTransport):
        def send(self, msg: EmailMessage, *, from_addr: str, to_addrs: Sequence[str]) -> None:
            super().send(msg, from_addr=from_addr, to_addrs=to_addrs)
            if to_addrs[0] == "c1@customer.example":
                raise Crash

    maildir = tmp_path / "out"
    later = NOW + timedelta(minutes=1)
    with pytest.raises(Crash):
        sender(sessions, CrashOnSecond(maildir)).run_once(later)
    assert [r.status for r in rows(sessions)] == ["queued"] * 3
    restarted = sender(sessions, MaildirTransport(maildir))
    assert restarted.run_once(later + LEASE - timedelta(seconds=1)) == 0
    assert restarted.run_once(later + LEASE + timedelta(seconds=1)) == 1
    assert restarted.run_once(later + 2 * LEASE - timedelta(seconds=1)) == 0
    assert restarted.run_once(later + 2 * LEASE + timedelta(seconds=1)) == 2
    copies = [message_from_bytes(p.read_bytes()) for p in (maildir / "new").iterdir()]
    assert sorted(m["Message-ID"] for m in copies) == [
        *["<k0@example.com>"] * 2,
        *["<k1@example.com>"] * 2,
        "<k2@example.com>",
    ]


class SyncsAndCommits:
    """Notes in order the commits (``C``), file fsyncs (``F``) and directory fsyncs (``D``)."""

    def __init__(self, sessions: sessionmaker[Session], *, is_failing_dirs: bool = False) -> None:
        self.seen: list[str] = []
        self.is_failing_dirs = is_failing_dirs
        self._fsync = os.fsync
        event.listen(sessions.kw["bind"], "commit", lambda _connection: self.seen.append("C"))

    def fsync(self, fd: int) -> None:
        """Note the fsync, then do it (or fail it, for a directory when told to)."""
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        self.seen.append("D" if is_dir else "F")
        if is_dir and self.is_failing_dirs:
            raise OSError(28, "No space left on device")
        self._fsync(fd)


def test_a_maildir_batch_is_durable_before_it_is_recorded(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch: its files synced, then one fsync of new/, then the commit that marks it sent."""
    for i in range(6):
        queue(sessions, i, f"c{i}@customer.example")
    syncs = SyncsAndCommits(sessions)
    monkeypatch.setattr(os, "fsync", syncs.fsync)
    transport = MaildirTransport(tmp_path / "out")
    assert sender(sessions, transport, claim_batch=4).run_once(NOW + timedelta(minutes=1)) == 6
    assert "".join(syncs.seen) == "C" + "FFFF" + "D" + "C" + "FF" + "D" + "C"
    assert {r.status for r in rows(sessions)} == {"sent"}
    assert len(list((tmp_path / "out" / "new").iterdir())) == 6


def test_a_maildir_batch_that_cannot_be_made_durable_is_not_recorded_as_sent(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed fsync of new/ leaves the batch's rows queued, backing off, with the error."""
    for i in range(2):
        queue(sessions, i, f"c{i}@customer.example")
    syncs = SyncsAndCommits(sessions, is_failing_dirs=True)
    monkeypatch.setattr(os, "fsync", syncs.fsync)
    later = NOW + timedelta(minutes=1)
    assert sender(sessions, MaildirTransport(tmp_path / "out")).run_once(later) == 0
    found = rows(sessions)
    assert [(r.status, r.attempts) for r in found] == [("queued", 1), ("queued", 1)]
    assert all("No space left on device" in (r.last_error or "") for r in found)
    assert all(r.next_attempt_at > later for r in found)
