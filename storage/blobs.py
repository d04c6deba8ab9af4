"""Content-addressed attachment storage: in the database or under a directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from storage.files import replace_durably
from storage.models import Blob
from storage.upserts import insert_if_absent

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

    from sqlalchemy.orm import Session


SHA256_HEX_LEN = 64
# The most blobs loaded by one query (a bound on its IN list).
BLOB_CHUNK = 500


def blob_path(root: Path, sha256: str) -> Path:
    """Where a blob lives on disk: derived from its hash only, never from a filename."""
    if len(sha256) != SHA256_HEX_LEN or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a sha256 hex digest")
    return root / sha256[:2] / sha256[2:4] / sha256


def store_blob(session: Session, sha256: str, data: bytes, root: Path | None) -> None:
    """Keep ``data`` once under its hash; a second copy of the same content is free."""
    # Executed now, not at flush: attachments reference blobs by key without a
    # relationship, so the unit of work could not order the inserts; and two instances
    # storing the same content at once must both succeed (ON CONFLICT DO NOTHING).
    # The insert is the existence check too: the file is written only by the
    # transaction that added the row, still before that transaction commits.
    added = insert_if_absent(
        session, Blob, {"sha256": sha256, "size": len(data), "data": data if root is None else None}
    )
    if added and root is not None:
        _write_file(blob_path(root, sha256), data)


def load_blob(session: Session, sha256: str, root: Path | None) -> bytes | None:
    """The content stored under ``sha256``, or None when unknown."""
    row = session.get(Blob, sha256)
    if row is None:
        return None
    if row.data is not None:
        return row.data
    if root is None:
        return None
    return blob_path(root, sha256).read_bytes()


def preload_blobs(session: Session, sha256s: Collection[str]) -> list[Blob]:
    """The blobs stored under ``sha256s``, in one query per :data:`BLOB_CHUNK` of them.

    Once loaded, :func:`load_blob`'s ``session.get`` finds each in the session without a
    query of its own, for as long as the caller holds the returned objects (the session
    only keeps them weakly).
    """
    wanted = sorted(sha256s)
    found: list[Blob] = []
    for start in range(0, len(wanted), BLOB_CHUNK):
        chunk = wanted[start : start + BLOB_CHUNK]
        found.extend(session.scalars(select(Blob).where(Blob.sha256.in_(chunk))))
    return found


def _write_file(path: Path, data: bytes) -> None:
    # tmp -> fsync -> rename: the file is whole or absent, and it is durable before
    # the transaction that names it commits.
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_durably(path, data)
