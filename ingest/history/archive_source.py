"""The archive source: existing mail history from an mbox, a maildir, .eml files or IMAP."""

from __future__ import annotations

import hashlib
import mailbox
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from ingest.sources.mailbox import ImapClientMailbox


@dataclass(frozen=True, slots=True)
class ArchivedMessage:
    """One message of a history; ``ref`` identifies its content, so a re-run adds nothing."""

    ref: str
    raw: bytes
    file_time: datetime


def archived(raw: bytes, file_time: datetime) -> ArchivedMessage:
    """Wrap raw bytes with their content address."""
    return ArchivedMessage("sha256:" + hashlib.sha256(raw).hexdigest(), raw, file_time)


def source_kind(path: Path) -> str:
    """``mbox``, ``maildir``, ``eml`` (one file) or ``directory`` (of message files)."""
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new")):
            return "maildir"
        return "directory"
    if not path.is_file():
        raise FileNotFoundError(f"no such file or directory: {path}")
    with path.open("rb") as fh:
        head = fh.read(5)
    return "mbox" if head == b"From " else "eml"


def read_path(path: Path) -> Iterator[ArchivedMessage]:
    """Every message stored at ``path``, in storage order (the import sorts them later)."""
    kind = source_kind(path)
    if kind == "mbox":
        yield from _read_mbox(path)
    elif kind == "maildir":
        yield from _read_maildir(path)
    elif kind == "eml":
        yield archived(path.read_bytes(), _mtime(path))
    else:
        for file in sorted(
            p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
        ):
            yield archived(file.read_bytes(), _mtime(file))


def read_mailbox(
    box: ImapClientMailbox, folder: str, batch_size: int = 100
) -> Iterator[ArchivedMessage]:
    """Every message in an IMAP folder, read-only (BODY.PEEK: nothing is flagged or moved)."""
    box.connect()
    try:
        box.select(folder)
        uids = box.every_uid()
        now = datetime.now(UTC)
        for start in range(0, len(uids), batch_size):
            fetched = box.fetch(uids[start : start + batch_size])
            for uid in sorted(fetched):
                yield archived(fetched[uid], now)
    finally:
        box.logout()


def _read_mbox(path: Path) -> Iterator[ArchivedMessage]:
    box = mailbox.mbox(path, create=False)
    try:
        stamp = _mtime(path)
        for key in box.iterkeys():
            yield archived(box.get_bytes(key), stamp)
    finally:
        box.close()


def _read_maildir(path: Path) -> Iterator[ArchivedMessage]:
    for sub in ("cur", "new"):
        for file in sorted((path / sub).iterdir()):
            if file.is_file():
                yield archived(file.read_bytes(), _mtime(file))


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
