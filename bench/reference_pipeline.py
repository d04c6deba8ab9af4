"""A single-process reference pipeline: what a careful, minimal mail-to-thread store costs.

The baseline of ``imap_e2e``'s reference figure (issue 20). On the same Dovecot and the same
seeded messages as mail2case, one process, one thread:

1. waits in IDLE on the watched folder, as mail2case's poller does;
2. FETCHes the new messages in chunks of 100 (``BODY.PEEK[]``, mail2case's default chunk);
3. parses each with the standard library (``policy.default``: addresses, subject, the text
   body);
4. stores the raw bytes and what it parsed in SQLite (WAL, ``synchronous=FULL``), one
   transaction per chunk: durable before anything is acknowledged;
5. threads each message by In-Reply-To, then References (newest first), to a stored message;
   a message matching none opens a thread and queues an acknowledgement row;
6. after the chunk's commit, moves the chunk to the done folder with one ``UID MOVE``.

No classification, priority, SLA clocks, audit events, contacts or rendering: what is left
is the floor any implementation of the same durable flow pays.
"""

from __future__ import annotations

import email
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.utils import parseaddr
from typing import TYPE_CHECKING

from imapclient import IMAPClient

from bench.threads import bare_id

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from email.message import EmailMessage
    from pathlib import Path

CHUNK = 100
IDLE_WAIT = 5.0  # seconds per idle_check; Dovecot reports a new message after ~0.5 s

SCHEMA = """
CREATE TABLE threads (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    customer TEXT NOT NULL,
    opened_at TEXT NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    uid INTEGER NOT NULL,
    message_id TEXT UNIQUE,
    thread_id INTEGER NOT NULL REFERENCES threads(id),
    sender TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    raw BLOB NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE acks (
    id INTEGER PRIMARY KEY,
    thread_id INTEGER NOT NULL UNIQUE REFERENCES threads(id),
    to_addr TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
);
"""
_IDS = re.compile(r"<[^<>]+>")


@dataclass(frozen=True)
class Mailbox:
    """Where the pipeline reads: a plain-IMAP account and the folder it watches."""

    host: str
    port: int
    username: str
    password: str
    folder: str

    @property
    def done_folder(self) -> str:
        """Where handled messages go (mail2case's ``processed_folder`` in the benchmark)."""
        return f"{self.folder}-done"


@dataclass(frozen=True)
class Parsed:
    """What the pipeline keeps of one message besides its raw bytes."""

    message_id: str | None
    sender: str
    subject: str
    body: str
    refs: list[str]  # most direct first: In-Reply-To, then References newest first


def parse(raw: bytes) -> Parsed:
    """The standard library's parse, with the text body (plain preferred, else HTML)."""
    msg: EmailMessage = email.message_from_bytes(raw, policy=policy.default)
    part = msg.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    refs = _IDS.findall(str(msg.get("In-Reply-To", "")))
    refs += reversed(_IDS.findall(str(msg.get("References", ""))))
    return Parsed(
        message_id=str(msg["Message-ID"]).strip() if msg["Message-ID"] else None,
        sender=parseaddr(str(msg.get("From", "")))[1].lower(),
        subject=str(msg.get("Subject", "")),
        body=body if isinstance(body, str) else "",
        refs=list(dict.fromkeys(refs)),
    )


def open_store(path: Path) -> sqlite3.Connection:
    """The durable store: WAL, ``synchronous=FULL``, transactions taken explicitly."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages'").fetchone():
        db.executescript(SCHEMA)
    return db


def store_chunk(db: sqlite3.Connection, chunk: Sequence[tuple[int, bytes]]) -> int:
    """Parse, thread and store one chunk in one transaction; returns how many were new."""
    now = datetime.now(UTC).isoformat()
    added = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        for uid, raw in chunk:
            added += _store_one(db, uid, raw, parse(raw), now)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return added


def _store_one(db: sqlite3.Connection, uid: int, raw: bytes, p: Parsed, now: str) -> int:
    if (
        p.message_id
        and db.execute("SELECT 1 FROM messages WHERE message_id = ?", (p.message_id,)).fetchone()
    ):
        return 0  # delivered twice: stored once (the move after a crash repeats a chunk)
    thread = _thread_of(db, p.refs)
    if thread is None:
        thread = db.execute(
            "INSERT INTO threads (subject, customer, opened_at) VALUES (?, ?, ?)",
            (p.subject, p.sender, now),
        ).lastrowid
        db.execute("INSERT INTO acks (thread_id, to_addr) VALUES (?, ?)", (thread, p.sender))
    db.execute(
        "INSERT INTO messages (uid, message_id, thread_id, sender, subject, body, raw,"
        " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (uid, p.message_id, thread, p.sender, p.subject, p.body, raw, now),
    )
    return 1


def _thread_of(db: sqlite3.Connection, refs: Sequence[str]) -> int | None:
    for ref in refs:
        row = db.execute("SELECT thread_id FROM messages WHERE message_id = ?", (ref,)).fetchone()
        if row:
            return int(row[0])
    return None


class ReferencePipeline:
    """The pipeline on one mailbox and one SQLite file; ``watch`` then ``drain``."""

    def __init__(self, mailbox: Mailbox, db_path: Path) -> None:
        self.mailbox = mailbox
        self.db = open_store(db_path)
        self.client = IMAPClient(mailbox.host, port=mailbox.port, ssl=False, timeout=30)
        self.client.login(mailbox.username, mailbox.password)
        self.handled = 0

    def watch(self) -> None:
        """Select the folder and wait in IDLE for mail (the caller lands it next)."""
        self.client.select_folder(self.mailbox.folder)
        self.client.idle()

    def drain(self, count: int, timeout: float = 1800.0) -> None:
        """Once IDLE reports mail, handle the folder until ``count`` messages are stored."""
        deadline = time.monotonic() + timeout
        while not any(kind == b"EXISTS" for _n, kind, *_ in self.client.idle_check(IDLE_WAIT)):
            if time.monotonic() > deadline:
                raise SystemExit("the reference pipeline saw no mail arrive")
        self.client.idle_done()
        while self.handled < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"reference pipeline: {self.handled} of {count} in {timeout}s")
            uids = self.client.search("ALL")
            if not uids:
                time.sleep(0.05)
            for chunk in _chunks(sorted(uids), CHUNK):
                self._handle(chunk)

    def _handle(self, uids: list[int]) -> None:
        fetched = self.client.fetch(uids, ["BODY.PEEK[]"])
        chunk = [(uid, bytes(fetched[uid][b"BODY[]"])) for uid in uids if uid in fetched]
        store_chunk(self.db, chunk)  # committed (durable) before the move acknowledges it
        self.client.move([uid for uid, _raw in chunk], self.mailbox.done_folder)
        self.handled += len(chunk)

    def placed(self) -> tuple[dict[str, int], int]:
        """Bare Message-ID → thread id of every stored message, and the acks queued."""
        rows = self.db.execute("SELECT message_id, thread_id FROM messages").fetchall()
        acks = self.db.execute("SELECT count(*) FROM acks WHERE status = 'queued'").fetchone()
        return {bare_id(mid): int(thread) for mid, thread in rows}, int(acks[0])

    def close(self) -> None:
        """Log out and close the store."""
        try:
            self.client.logout()
        finally:
            self.db.close()


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
