"""Data retention: drop raw mail and attachment contents of long-closed cases, keep the record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select, update

from storage.blobs import blob_path
from storage.models import (
    Attachment,
    Blob,
    Case,
    CaseEvent,
    Inbound,
    InboundRaw,
    Message,
    Outbox,
)
from storage.statuses import OutboxStatus

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from sqlalchemy.orm import Session

PURGED = "purged"  # Inbound.reason of a row whose raw bytes are gone


@dataclass(frozen=True)
class CasePurge:
    """What purging one case removed (or would remove, on a dry run)."""

    ref: int
    inbound: int = 0
    raw_bytes: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    files: tuple[Path, ...] = field(default=(), repr=False)  # delete after the commit

    @property
    def is_empty(self) -> bool:
        """Nothing was left to purge."""
        return not (self.inbound or self.blobs)


def purgeable_case_ids(
    session: Session, closed_before: datetime, limit: int, after_id: int = 0
) -> list[int]:
    """Closed cases, closed before ``closed_before``, that still hold raw mail (by id)."""
    unpurged = select(Inbound.case_id).where(
        Inbound.case_id.is_not(None), or_(Inbound.reason.is_(None), Inbound.reason != PURGED)
    )
    stmt = (
        select(Case.id)
        .where(
            Case.id > after_id,
            Case.status == "closed",
            Case.closed_at < closed_before,
            Case.id.in_(unpurged),
        )
        .order_by(Case.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def purge_case(
    session: Session,
    case_id: int,
    *,
    closed_before: datetime,
    now: datetime,
    attachments_dir: Path | None,
    dry_run: bool = False,
) -> CasePurge:
    """Blank the case's raw mail and unshared blobs; add a ``purged`` event (unless dry)."""
    case = session.get_one(Case, case_id)
    rows = _unpurged_inbound(session, case_id)
    ids = [r.id for r in rows]
    blobs = [b for b in _case_blobs(session, case_id) if _is_purgeable(session, b, closed_before)]
    files = tuple(p for b in blobs if (p := _blob_file(b, attachments_dir)) is not None)
    result = CasePurge(
        ref=case.ref,
        inbound=len(rows),
        raw_bytes=_raw_bytes(session, ids),
        blobs=len(blobs),
        blob_bytes=sum(b.size for b in blobs),
        files=files,
    )
    if dry_run or result.is_empty:
        return result
    session.execute(update(InboundRaw).where(InboundRaw.inbound_id.in_(ids)).values(raw=b""))
    session.execute(update(Inbound).where(Inbound.id.in_(ids)).values(reason=PURGED))
    for blob in blobs:
        blob.data = b""  # empty, not None: None means "on disk", and the file goes too
    data = {"inbound": result.inbound, "raw_bytes": result.raw_bytes, "blobs": result.blobs}
    session.add(CaseEvent(case_id=case_id, at=now, kind=PURGED, detail=_detail(result), data=data))
    return result


def _raw_bytes(session: Session, inbound_ids: list[int]) -> int:
    """How many bytes of raw mail the rows hold (read without loading them)."""
    if not inbound_ids:
        return 0
    total = session.scalar(
        select(func.sum(func.length(InboundRaw.raw))).where(InboundRaw.inbound_id.in_(inbound_ids))
    )
    return int(total or 0)


def _unpurged_inbound(session: Session, case_id: int) -> list[Inbound]:
    via_messages = select(Message.inbound_id).where(
        Message.case_id == case_id, Message.inbound_id.is_not(None)
    )
    stmt = select(Inbound).where(
        or_(Inbound.case_id == case_id, Inbound.id.in_(via_messages)),
        or_(Inbound.reason.is_(None), Inbound.reason != PURGED),
    )
    return list(session.scalars(stmt))


def _case_blobs(session: Session, case_id: int) -> list[Blob]:
    shas = (
        select(Attachment.sha256)
        .join(Message, Message.id == Attachment.message_id)
        .where(Message.case_id == case_id)
    )
    # A purged blob is b""; an empty attachment is too, and has nothing to purge either.
    stmt = select(Blob).where(Blob.sha256.in_(shas), or_(Blob.data.is_(None), Blob.size > 0))
    return [b for b in session.scalars(stmt) if b.data != b""]


def _is_purgeable(session: Session, blob: Blob, closed_before: datetime) -> bool:
    """No case still within retention, and no mail waiting to be sent, uses the blob."""
    keeping = (
        select(Attachment.id)
        .join(Message, Message.id == Attachment.message_id)
        .join(Case, Case.id == Message.case_id)
        .where(
            Attachment.sha256 == blob.sha256,
            or_(Case.status != "closed", Case.closed_at.is_(None), Case.closed_at >= closed_before),
        )
        .limit(1)
    )
    if session.scalar(keeping) is not None:
        return False
    queued = session.scalars(select(Outbox.attachments).where(Outbox.status == OutboxStatus.QUEUED))
    return not any(item.get("sha256") == blob.sha256 for items in queued for item in items)


def _blob_file(blob: Blob, attachments_dir: Path | None) -> Path | None:
    if blob.data is not None or attachments_dir is None:
        return None
    return blob_path(attachments_dir, blob.sha256)


def _detail(result: CasePurge) -> str:
    return (
        f"retention: raw mail of {result.inbound} message(s) ({result.raw_bytes} bytes) and "
        f"{result.blobs} attachment content(s) ({result.blob_bytes} bytes) removed"
    )
