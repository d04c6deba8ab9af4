"""The pipe source: ``mail2case ingest`` commits files, or standard input, as raw mail."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from storage import inbound

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

log = structlog.get_logger("mail2case.ingest")


def read_stdin() -> bytes:
    """The whole message from standard input, as bytes."""
    return sys.stdin.buffer.read()


def commit_files(sessions: sessionmaker[Session], files: Sequence[Path] | None) -> list[int]:
    """Commit each file (or stdin when None) as one raw message; returns the inbound ids.

    All of them are read before anything is committed, so a missing file fails the
    whole call before any partial work (the MTA retries the lot).
    """
    items = (
        [("stdin", read_stdin())] if files is None else [(str(f), f.read_bytes()) for f in files]
    )
    ids: list[int] = []
    with sessions.begin() as s:
        for name, raw in items:
            row = inbound.add_inbound(
                s, raw=raw, source="stdin" if files is None else "file", now=datetime.now(UTC)
            )
            ids.append(row.id)
            log.info(
                "message.received", source=row.source, inbound_id=row.id, size=len(raw), file=name
            )
    return ids
