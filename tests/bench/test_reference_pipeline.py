"""The reference pipeline of imap_e2e on a tiny mix: it threads as the headers say (no timing)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from bench.imap_e2e import reference_run
from bench.mix import generate
from bench.reference_pipeline import open_store, store_chunk
from bench.threads import check, expected

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.dovecot import DovecotServer


def test_reference_pipeline_threads_the_mix_and_empties_the_folder(
    dovecot: DovecotServer, tmp_path: Path
) -> None:
    """Every root opens a thread with one ack, every reply joins its root, the folder is moved."""
    mix = generate(30, seed=5)
    want = expected(mix)
    assert want.replies > 0  # the seed has replies to thread
    took, verdict = reference_run(tmp_path, dovecot, mix)
    assert took > 0
    assert verdict.ok, verdict.line()
    assert verdict.acks == want.threads
    (db_file,) = tmp_path.glob("*.db")
    folder = db_file.stem
    assert dovecot.messages(folder) == {}
    assert len(dovecot.messages(f"{folder}-done")) == len(mix)


def test_a_chunk_delivered_twice_is_stored_once(tmp_path: Path) -> None:
    """A repeated chunk (a crash between commit and move) adds no message, thread or ack."""
    mix = generate(12, seed=5)
    db = open_store(tmp_path / "ref.db")
    chunk = list(enumerate(mix, start=1))
    assert store_chunk(db, chunk) == len(mix)
    assert store_chunk(db, chunk) == 0
    db.close()
    with sqlite3.connect(tmp_path / "ref.db") as again:
        messages = again.execute("SELECT count(*) FROM messages").fetchone()[0]
        journal = again.execute("PRAGMA journal_mode").fetchone()[0]
    assert messages == len(mix)
    assert journal == "wal"


def test_check_counts_a_reply_outside_its_root_thread_as_not_threaded() -> None:
    """The verdict is not ok when a reply opened a thread of its own."""
    mix = generate(30, seed=5)
    want = expected(mix)
    groups = {mid: i for i, mid in enumerate(sorted(set(want.root_of.values())))}
    placed = {mid: groups[root] for mid, root in want.root_of.items()}
    assert check("right", want, placed, want.threads).ok
    reply = next(mid for mid, root in want.root_of.items() if mid != root)
    wrong = check("wrong", want, {**placed, reply: -1}, want.threads)
    assert not wrong.ok
    assert wrong.replies_threaded == want.replies - 1
