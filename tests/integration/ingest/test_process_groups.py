"""The process stage in groups: few commits, savepoints only to redo a failure, bounded bytes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, select

from ingest import process
from ingest.analysis.sandbox import InProcess
from ingest.case_step import CaseStep
from mail2case import app
from mail2case.config.settings import config_from_mapping
from storage import inbound
from storage.models import Case, Inbound, Message
from storage.statuses import InboundStatus
from tests.support.services import REPO

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from ingest.analysis.core import Analysis, AnalysisSettings
    from ingest.outcome import Outcome
    from mail2case.config.settings import Config

    Sessions = sessionmaker[Session]

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _mail(n: int, subject: str = "") -> bytes:
    return (
        f"From: Customer {n} <c{n}@client.example>\r\nTo: support@example.com\r\n"
        f"Subject: {subject or f'Question number {n}'}\r\nMessage-ID: <q{n}@client.example>\r\n"
        f"Date: Thu, 26 Nov 2026 09:00:00 +0000\r\n\r\nHello, question {n}.\r\n"
    ).encode()


def _site(tmp_path: Path, raws: list[bytes]) -> tuple[Config, Engine, Sessions, list[int]]:
    config = config_from_mapping(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'groups.db'}"},
            "support": {"address": "support@example.com"},
        }
    )
    engine, sessions = app.open_database(config)
    with sessions.begin() as s:
        ids = [
            inbound.add_inbound(s, raw=raw, source="smtp", now=NOW, mail_from="c@client.example").id
            for raw in raws
        ]
    return config, engine, sessions, ids


def test_a_group_of_messages_costs_two_commits_not_two_each(tmp_path: Path) -> None:
    """Sixteen messages: their attempts in one commit, their case work in few more."""
    config, engine, sessions, ids = _site(tmp_path, [_mail(n) for n in range(16)])
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    done = app.build_processor(config, sessions).handle_many([(i, NOW) for i in ids])
    assert [i for i, _ in done] == ids
    assert all(o is not None and o.status == InboundStatus.PROCESSED for _, o in done)
    # One for the claims, and the case work in transactions of up to 30 ms each: far
    # fewer than the 32 that one message at a time took.
    assert len(commits) <= 8
    engine.dispose()


def test_the_byte_budget_splits_a_group_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the budget the rest goes to the next group; every message is still handled."""
    monkeypatch.setattr(process, "_GROUP_BYTES", 1)
    config, engine, sessions, ids = _site(tmp_path, [_mail(n) for n in range(5)])
    done = app.build_processor(config, sessions).handle_many([(i, NOW) for i in ids])
    assert [i for i, _ in done] == ids
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 5
    engine.dispose()


class _BrokenOnBoom(CaseStep):
    def run(self) -> Outcome:
        if "boom" in self.mail.subject:
            raise RuntimeError("a bug in the case step")
        return super().run()


def test_a_failing_message_is_quarantined_and_the_rest_of_its_group_commits(
    tmp_path: Path,
) -> None:
    """The savepoint: one message's failure undoes its own work only."""
    raws = [_mail(0), _mail(1, "boom here"), _mail(2)]
    config, engine, sessions, ids = _site(tmp_path, raws)
    processor = app.build_processor(config, sessions)
    processor.step = _BrokenOnBoom
    done = dict(processor.handle_many([(i, NOW) for i in ids]))
    assert [o.status if o else None for o in done.values()] == [
        InboundStatus.PROCESSED,
        InboundStatus.QUARANTINED,
        InboundStatus.PROCESSED,
    ]
    broken = done[ids[1]]
    assert broken is not None
    assert "a bug in the case step" in (broken.reason or "")
    with sessions() as s:
        rows = {r.id: r for r in s.scalars(select(Inbound))}
        assert rows[ids[1]].status == "quarantined"
        assert rows[ids[1]].case_id is None  # nothing of its case work survived
        assert None not in {rows[ids[0]].case_id, rows[ids[2]].case_id}
    engine.dispose()


def test_a_group_that_does_not_fail_takes_no_savepoint(tmp_path: Path) -> None:
    """Messages whose case work succeeds cost no SAVEPOINT and no RELEASE each."""
    config, engine, sessions, ids = _site(tmp_path, [_mail(n) for n in range(6)])
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    done = app.build_processor(config, sessions).handle_many([(i, NOW) for i in ids])
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 6
    assert not [sql for sql in seen if "SAVEPOINT" in sql.upper()]
    engine.dispose()


def test_a_failing_message_undoes_its_transaction_and_the_redo_leaves_no_trace(
    tmp_path: Path,
) -> None:
    """After the redo with savepoints: each other message once, references without a gap."""
    raws = [_mail(0), _mail(1), _mail(2, "boom here"), _mail(3), _mail(4)]
    config, engine, sessions, ids = _site(tmp_path, raws)
    processor = app.build_processor(config, sessions)
    processor.step = _BrokenOnBoom
    done = dict(processor.handle_many([(i, NOW) for i in ids]))
    statuses = [o.status if o else None for o in done.values()]
    assert (
        statuses
        == [InboundStatus.PROCESSED] * 2
        + [InboundStatus.QUARANTINED]
        + [InboundStatus.PROCESSED] * 2
    )
    with sessions() as s:
        refs = sorted(s.scalars(select(Case.ref)))
        received = s.scalars(select(Message.inbound_id).where(Message.direction == "in")).all()
    assert len(refs) == 4
    assert refs == list(range(refs[0], refs[0] + 4))  # none given out twice, none lost
    assert sorted(i or 0 for i in received) == [ids[0], ids[1], ids[3], ids[4]]
    engine.dispose()


def test_a_message_tried_before_is_claimed_alone(tmp_path: Path) -> None:
    """A crash during a group counts once against each; after it, each retry goes alone."""
    _config, engine, sessions, ids = _site(tmp_path, [_mail(n) for n in range(4)])
    with sessions.begin() as s:
        s.get_one(Inbound, ids[2]).attempts = 1  # its last attempt never settled
    periods = dict.fromkeys(ids, timedelta(0))

    def claim(todo: list[int]) -> list[int]:
        with sessions.begin() as s:
            answers = inbound.claim_attempts(
                s, todo, max_attempts=3, now=NOW, claim_periods=periods, max_bytes=10**9
            )
        assert all(isinstance(a, inbound.Claimed) for a in answers)
        return [a.inbound_id for a in answers]

    assert claim(ids) == ids[:2]  # the group ends before the row tried before
    assert claim(ids[2:]) == [ids[2]]  # which comes alone, counted against it only
    with sessions() as s:
        attempts = [s.get_one(Inbound, i).attempts for i in ids]
    assert attempts == [0, 0, 2, 0]  # a group's claim counts against none of its rows
    # The group's rows were marked: a crash left them unsettled, so each comes alone.
    assert claim(ids) == [ids[0]]
    with sessions() as s:
        assert s.get_one(Inbound, ids[0]).attempts == 1
    engine.dispose()


def test_a_crash_during_a_group_counts_against_none_of_it(tmp_path: Path) -> None:
    """Kill after the group's claim: every member is retried alone, none quarantined early."""
    config, engine, sessions, ids = _site(tmp_path, [_mail(n) for n in range(4)])
    periods = dict.fromkeys(ids, timedelta(0))
    with sessions.begin() as s:  # the group is claimed, then the process is killed
        answers = inbound.claim_attempts(
            s, ids, max_attempts=3, now=NOW, claim_periods=periods, max_bytes=10**9
        )
    assert [a.inbound_id for a in answers if isinstance(a, inbound.Claimed)] == ids
    with sessions() as s:
        assert [s.get_one(Inbound, i).attempts for i in ids] == [0, 0, 0, 0]
    done = app.build_processor(config, sessions).handle_many([(i, NOW) for i in ids])
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 4
    with sessions() as s:
        assert [s.get_one(Inbound, i).attempts for i in ids] == [1, 1, 1, 1]
    engine.dispose()


def test_claim_answers_each_row_with_what_the_caller_must_do(tmp_path: Path) -> None:
    """Claimed: work on it; Exhausted: quarantine it; Skipped: settled, not the caller's."""
    _config, engine, sessions, ids = _site(tmp_path, [_mail(n) for n in range(3)])
    with sessions.begin() as s:
        used_up = s.get_one(Inbound, ids[1])
        used_up.attempts, used_up.reason = 3, "timeout: analysis took over 20 s"
        inbound.settle(s, ids[2], status=InboundStatus.PROCESSED, now=NOW)
    periods = dict.fromkeys(ids, timedelta(0))
    with sessions.begin() as s:
        answers = inbound.claim_attempts(
            s, ids, max_attempts=3, now=NOW, claim_periods=periods, max_bytes=10**9
        )
    claimed, exhausted, skipped = answers
    assert isinstance(claimed, inbound.Claimed)
    assert (claimed.inbound_id, claimed.claim.attempts) == (ids[0], 1)
    assert claimed.claim.raw == _mail(0)
    assert exhausted == inbound.Exhausted(ids[1], "smtp", 3, "timeout: analysis took over 20 s")
    assert skipped == inbound.Skipped(ids[2])
    engine.dispose()


@pytest.mark.parametrize(("group_size", "claims"), [(None, [16, 16, 8]), (64, [40])])
def test_the_group_size_sets_how_many_messages_are_claimed_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group_size: int | None, claims: list[int]
) -> None:
    """Forty messages: claimed 16 at a time by default, at once with a group of 64 (imports)."""
    config, engine, sessions, ids = _site(tmp_path, [_mail(n) for n in range(40)])
    sizes: list[int] = []
    claim_attempts = inbound.claim_attempts

    def counting(s: Session, group: Sequence[int], **kwargs: Any) -> list[inbound.ClaimResult]:
        sizes.append(len(group))
        return claim_attempts(s, group, **kwargs)

    monkeypatch.setattr(inbound, "claim_attempts", counting)
    processor = app.build_processor(config, sessions)
    if group_size is not None:
        processor.pace = process.Pace(group_size=group_size)
    done = processor.handle_many([(i, NOW) for i in ids])
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 40
    assert sizes == claims
    engine.dispose()


def test_a_pace_that_waits_for_the_analysis_commits_a_group_at_once(tmp_path: Path) -> None:
    """Analysed in the worker, 40 messages: one commit for their claims, one for their case work."""
    config, engine, sessions, ids = _site(tmp_path, [_mail(n) for n in range(40)])
    processor = app.build_processor(config, sessions)
    processor.analyser = app.bounded_analyser(config, processor.settings)
    processor.pace = process.Pace(
        group_size=64, transaction_seconds=600.0, is_waiting_for_analysis=True
    )
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    try:
        done = processor.handle_many([(i, NOW) for i in ids])
    finally:
        processor.analyser.close()
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 40
    assert len(commits) == 3  # and the case-reference counter's set-up, once per processor
    engine.dispose()


class _SlowOnSubject(InProcess):
    """The real analysis, as if on another core, ``seconds`` longer for mail holding ``marker``.

    The default marker is a "slow" subject; an empty one slows every message.
    """

    runs_elsewhere = True

    def __init__(
        self, settings: AnalysisSettings, seconds: float, marker: bytes = b"Subject: slow"
    ) -> None:
        super().__init__(settings)
        self.seconds = seconds
        self.marker = marker

    def analyse(self, raw: bytes, *, null_sender: bool) -> Analysis:
        """Analyse ``raw``, after a pause when it holds the marker."""
        if self.marker in raw:
            time.sleep(self.seconds)
        return super().analyse(raw, null_sender=null_sender)


def test_waiting_for_a_slow_analysis_never_holds_a_transaction_past_its_budget(
    tmp_path: Path,
) -> None:
    """A 1.5 s analysis is waited for only while the 0.2 s transaction is young: it commits."""
    config, engine, sessions, ids = _site(tmp_path, [_mail(0), _mail(1, "slow one"), _mail(2)])
    processor = app.build_processor(config, sessions)
    processor.analyser = _SlowOnSubject(processor.settings.analysis, 1.5)
    processor.pace = process.Pace(
        group_size=64, transaction_seconds=0.2, is_waiting_for_analysis=True
    )
    opened: list[float] = []
    held: list[float] = []
    event.listen(engine, "begin", lambda _conn: opened.append(time.monotonic()))
    event.listen(engine, "commit", lambda _conn: held.append(time.monotonic() - opened[-1]))
    done = processor.handle_many([(i, NOW) for i in ids])
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 3
    assert max(held) < 1.0  # the slow analysis ran between two transactions, not in one
    engine.dispose()


class _Elsewhere(InProcess):
    """The real analysis, as if on another core: the processor claims the next group ahead."""

    runs_elsewhere = True


def _claims_and_work(
    monkeypatch: pytest.MonkeyPatch, processor: process.Processor
) -> list[tuple[str, int]]:
    """What the processor does, in order: ("claim", messages claimed), ("work", messages)."""
    seen: list[tuple[str, int]] = []
    claim, work = processor._claim, processor._work  # observed, not replaced

    def claiming(group: list[tuple[int, datetime]], max_bytes: int) -> Any:
        claimed = claim(group, max_bytes)
        seen.append(("claim", len(claimed[0])))
        return claimed

    def working(claims: list[Any]) -> dict[int, Outcome | None]:
        seen.append(("work", len(claims)))
        return work(claims)

    monkeypatch.setattr(processor, "_claim", claiming)
    monkeypatch.setattr(processor, "_work", working)
    return seen


def _observed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raws: list[bytes], *, elsewhere: bool = True
) -> tuple[Engine, process.Processor, list[int], list[tuple[str, int]]]:
    """A processor over ``raws`` (analysed as if on another core), its claims and work noted."""
    config, engine, sessions, ids = _site(tmp_path, raws)
    processor = app.build_processor(config, sessions)
    if elsewhere:
        processor.analyser = _Elsewhere(processor.settings.analysis)
    return engine, processor, ids, _claims_and_work(monkeypatch, processor)


def test_with_the_analysis_elsewhere_the_next_group_is_claimed_before_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty messages: each group of 16 is claimed (and fed to the worker) ahead of its turn."""
    engine, processor, ids, seen = _observed(tmp_path, monkeypatch, [_mail(n) for n in range(40)])
    done = processor.handle_many([(i, NOW) for i in ids])
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 40
    assert seen == [
        ("claim", 16),
        ("claim", 16),
        ("work", 16),
        ("claim", 8),
        ("work", 16),
        ("work", 8),
    ]
    engine.dispose()


def test_in_process_analysis_claims_nothing_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Analysed at the claim (the CLI), a group ahead would only be held longer: none is."""
    raws = [_mail(n) for n in range(20)]
    engine, processor, ids, seen = _observed(tmp_path, monkeypatch, raws, elsewhere=False)
    processor.handle_many([(i, NOW) for i in ids])
    assert seen == [("claim", 16), ("work", 16), ("claim", 4), ("work", 4)]
    engine.dispose()


def test_a_message_tried_before_has_nothing_claimed_around_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry is claimed alone and worked on alone: a crash it causes is counted against it.

    Neither the group before it claims it ahead (its attempt would be counted for a
    crash in that group's case work), nor does it claim the group after it.
    """
    engine, processor, ids, seen = _observed(tmp_path, monkeypatch, [_mail(n) for n in range(20)])
    processor._unsettled.add(ids[16])  # as after a failed transaction
    done = processor.handle_many([(i, NOW) for i in ids])
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 20
    assert seen == [
        ("claim", 16),
        ("work", 16),
        ("claim", 1),
        ("work", 1),
        ("claim", 3),
        ("work", 3),
    ]
    engine.dispose()


def test_a_group_claimed_ahead_shares_the_byte_budget_of_the_one_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The raw mail held stays within one group's budget (and one mail over it), as before.

    Six mails of one size, groups of 2, a budget of 2.5 mails: the group ahead gets what
    the current one left (half a mail: one message), never a budget of its own.
    """
    raws = [_mail(n) for n in range(6)]
    monkeypatch.setattr(process, "_GROUP_BYTES", len(raws[0]) * 5 // 2)
    engine, processor, ids, seen = _observed(tmp_path, monkeypatch, raws)
    processor.pace = process.Pace(group_size=2)
    done = processor.handle_many([(i, NOW) for i in ids])
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 6
    assert seen == [
        ("claim", 2),
        ("claim", 1),
        ("work", 2),
        ("claim", 2),
        ("work", 1),
        ("claim", 1),
        ("work", 2),
        ("work", 1),
    ]
    engine.dispose()


def test_analyses_that_come_in_during_a_transaction_need_no_query_each(tmp_path: Path) -> None:
    """An import's transaction waits for analyses: its rows are locked in one query, not six."""
    config, engine, sessions, ids = _site(tmp_path, [_mail(n) for n in range(6)])
    processor = app.build_processor(config, sessions)
    # Every analysis 50 ms: each comes in during the transaction.
    processor.analyser = _SlowOnSubject(processor.settings.analysis, 0.05, marker=b"")
    processor.pace = process.Pace(
        group_size=64, transaction_seconds=5, is_waiting_for_analysis=True
    )
    locks: list[str] = []
    transactions: list[int] = []
    event.listen(engine, "begin", lambda _conn: transactions.append(1))

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        # storage.inbound.lock_claimed's columns (the claim reads others)
        if statement.startswith(
            "SELECT inbound.id, inbound.source, inbound.mail_from, inbound.rcpt_to"
        ):
            locks.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    done = processor.handle_many([(i, NOW) for i in ids])
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 6
    assert len(transactions) == 3  # the reference counter, the claims, the work of all six
    assert len(locks) == 1
    engine.dispose()


# The daemon's SMTP commit, from another process: an urgent writer; prints when it committed.
_SMTP_COMMIT = """
import sys, time
from datetime import UTC, datetime
from storage import inbound
from storage.engine import make_engine, session_factory
from storage.write_queue import urgent
sessions = session_factory(make_engine(sys.argv[1]))
with urgent(), sessions.begin() as s:
    inbound.add_inbound(s, raw=b"Subject: hi\\r\\n\\r\\nhi\\r\\n", source="smtp",
                        now=datetime.now(UTC), mail_from="a@client.example")
print(time.monotonic(), flush=True)
"""


class _SlowWithSmtp(_SlowOnSubject):
    """A slow analysis during which the daemon's SMTP listener commits a message."""

    def __init__(self, settings: AnalysisSettings, seconds: float, url: str) -> None:
        super().__init__(settings, seconds)
        self.url = url
        self.smtp: subprocess.Popen[str] | None = None
        self.slow_done = 0.0

    def analyse(self, raw: bytes, *, null_sender: bool) -> Analysis:
        """Start the SMTP commit as the slow analysis begins; note when it ends."""
        if b"Subject: slow" in raw:
            self.smtp = subprocess.Popen(
                [sys.executable, "-c", _SMTP_COMMIT, self.url],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        found = super().analyse(raw, null_sender=null_sender)
        if b"Subject: slow" in raw:
            self.slow_done = time.monotonic()
        return found


def test_a_transaction_waiting_for_an_analysis_lets_an_smtp_commit_in(tmp_path: Path) -> None:
    """The daemon's pace waits for analyses while young, but not while an SMTP commit waits.

    Without that, the SMTP commit would wait for the 1.5 s analysis (the budget is 5 s).
    """
    raws = [_mail(0), _mail(1, "slow one"), _mail(2)]
    config, engine, sessions, ids = _site(tmp_path, raws)
    processor = app.build_processor(config, sessions)
    analyser = _SlowWithSmtp(processor.settings.analysis, 1.5, str(engine.url))
    processor.analyser = analyser
    processor.pace = process.Pace(transaction_seconds=5, is_waiting_for_analysis=True)
    done = processor.handle_many([(i, NOW) for i in ids])
    assert [o.status if o else None for _, o in done] == [InboundStatus.PROCESSED] * 3
    assert analyser.smtp is not None
    out, _ = analyser.smtp.communicate(timeout=30)
    assert analyser.smtp.returncode == 0
    assert float(out) < analyser.slow_done  # committed while the analysis still ran
    engine.dispose()
