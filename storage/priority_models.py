"""Priority models installed by ``mail2case priority train``; the latest one decides."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from storage.models import PriorityModelRecord

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session

__all__ = ["InstalledModel", "install_model", "latest_model"]


@dataclass(frozen=True, slots=True)
class InstalledModel:
    """A model file's bytes and what its training measured."""

    data: bytes
    installed_at: datetime
    installed_by: str
    examples: int
    site_examples: int
    accuracy_before: float | None
    accuracy_after: float | None
    site_labels: dict[str, Any] = field(default_factory=dict)  # {"ref": "label", ...}
    id: int | None = None

    @property
    def sha256(self) -> str:
        """The digest of the model file."""
        return hashlib.sha256(self.data).hexdigest()


def install_model(session: Session, model: InstalledModel) -> int:
    """Store ``model`` as the one that decides from now on; its id."""
    record = PriorityModelRecord(
        installed_at=model.installed_at,
        installed_by=model.installed_by,
        sha256=model.sha256,
        data=model.data,
        examples=model.examples,
        site_examples=model.site_examples,
        accuracy_before=model.accuracy_before,
        accuracy_after=model.accuracy_after,
        site_labels=model.site_labels,
    )
    session.add(record)
    session.flush()
    return record.id


def latest_model(session: Session) -> InstalledModel | None:
    """The model installed last, or None when ``priority train`` never installed one."""
    record = session.scalars(
        select(PriorityModelRecord).order_by(PriorityModelRecord.id.desc()).limit(1)
    ).first()
    if record is None:
        return None
    return InstalledModel(
        data=record.data,
        installed_at=record.installed_at,
        installed_by=record.installed_by,
        examples=record.examples,
        site_examples=record.site_examples,
        accuracy_before=record.accuracy_before,
        accuracy_after=record.accuracy_after,
        site_labels=dict(record.site_labels),
        id=record.id,
    )
