"""The raw mail lives apart from the status columns: claiming and settling do not rewrite it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import event, select

from storage import inbound
from storage.engine import make_engine, session_factory
from storage.models import Inbound
from storage.schema import upgrade
from storage.statuses import InboundStatus
from storage.write_queue import checkpoint

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
MESSAGES = 50
RAW_SIZE = 48_000  # a mail with a modest attachment, the benchmark mix's average
# Claiming and settling 50 rows touches their inbound rows only: a few pages. With the
# 48 KB of mail in the same row it was at least the mail twice over (4.8 MB).
WAL_LIMIT = 400_000


def test_claim_and_settle_leave_the_raw_bytes_unwritten(tmp_path: Path) -> None:
    """After a checkpoint, claiming and settling 50 mails of 48 KB writes under 400 KB of WAL."""
    database = tmp_path / "m.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    sessions = session_factory(engine)
    raws = [bytes([65 + n % 26]) * RAW_SIZE for n in range(MESSAGES)]
    with sessions.begin() as s:
        ids = [inbound.add_inbound(s, raw=r, source="smtp", now=NOW).id for r in raws]
    assert checkpoint(engine, truncate=True) == 0
    wal = database.with_name("m.db-wal")
    assert wal.stat().st_size == 0
    with sessions.begin() as s:
        claimed = inbound.claim_attempts(
            s,
            ids,
            max_attempts=5,
            now=NOW,
            claim_periods=dict.fromkeys(ids, timedelta(minutes=5)),
            max_bytes=RAW_SIZE * MESSAGES,
        )
    assert [c.claim.raw for c in claimed if isinstance(c, inbound.Claimed)] == raws
    with sessions.begin() as s:
        for inbound_id in ids:
            inbound.settle(s, inbound_id, status=InboundStatus.PROCESSED, now=NOW)
    assert wal.stat().st_size < WAL_LIMIT
    with sessions() as s:
        assert inbound.status_counts(s) == {InboundStatus.PROCESSED: MESSAGES}
    engine.dispose()


def test_mail_added_together_is_one_insert_per_table_with_ids_in_order(database_url: str) -> None:
    """``add_mail``: each row gets its own bytes, envelope and status, and ids in order."""
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    inserts: list[str] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda *args: inserts.append(args[2]) if args[2].startswith("INSERT") else None,
    )
    # Sizes that differ, so that a row given another row's bytes would show.
    mails = [
        inbound.NewMail(
            bytes([65 + n]) * (100 + n),
            mail_from=f"c{n}@example.org",
            rcpt_to=[f"s{n}@example.com"],
            source_ref=f"ref-{n}",
            status=InboundStatus.HELD if n % 2 else InboundStatus.RECEIVED,
            written_at=NOW - timedelta(days=n),
        )
        for n in range(20)
    ]
    with sessions.begin() as s:
        ids = inbound.add_mail(s, source="import", now=NOW, mails=mails)
    assert len(inserts) == 2, inserts
    assert ids == sorted(ids)
    with sessions() as s:
        rows = {row.id: row for row in s.scalars(select(Inbound).where(Inbound.id.in_(ids)))}
        for row_id, mail in zip(ids, mails, strict=True):
            row = rows[row_id]
            assert (row.raw, row.size, row.source_ref, row.mail_from, row.rcpt_to) == (
                mail.raw,
                len(mail.raw),
                mail.source_ref,
                mail.mail_from,
                list(mail.rcpt_to),
            )
            assert (row.status, row.written_at, row.attempts) == (mail.status, mail.written_at, 0)
    engine.dispose()
