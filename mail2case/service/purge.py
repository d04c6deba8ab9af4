"""Retention runs: purge raw mail of long-closed cases, one transaction per case."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from storage import purging

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

    from storage.purging import CasePurge

log = structlog.get_logger("mail2case.service.purge")
BATCH = 100


@dataclass
class PurgeReport:
    """What a purge run removed, per case and in total."""

    older_than_days: int
    dry_run: bool
    cases: list[CasePurge] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``mail2case purge --json``."""
        return {
            "older_than_days": self.older_than_days,
            "dry_run": self.dry_run,
            "cases": len(self.cases),
            "inbound": sum(c.inbound for c in self.cases),
            "raw_bytes": sum(c.raw_bytes for c in self.cases),
            "blobs": sum(c.blobs for c in self.cases),
            "blob_bytes": sum(c.blob_bytes for c in self.cases),
            "refs": [c.ref for c in self.cases],
        }


@dataclass(frozen=True)
class _Run:
    """What every case of one purge run is purged with."""

    closed_before: datetime
    now: datetime
    attachments_dir: Path | None
    dry_run: bool

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``storage.purging.purge_case``."""
        return dataclasses.asdict(self)


def purge(
    sessions: sessionmaker[Session],
    *,
    older_than_days: int,
    now: datetime,
    attachments_dir: Path | None,
    dry_run: bool = False,
) -> PurgeReport:
    """Purge every closed case closed more than ``older_than_days`` ago."""
    run = _Run(
        closed_before=now - timedelta(days=older_than_days),
        now=now,
        attachments_dir=attachments_dir,
        dry_run=dry_run,
    )
    report = PurgeReport(older_than_days, dry_run)
    after = 0
    while True:
        with sessions() as s:
            ids = purging.purgeable_case_ids(s, run.closed_before, BATCH, after)
        if not ids:
            return report
        for case_id in ids:
            done = _purge_one(sessions, case_id, run)
            if not done.is_empty:
                report.cases.append(done)
        after = ids[-1]


def _purge_one(sessions: sessionmaker[Session], case_id: int, run: _Run) -> CasePurge:
    if run.dry_run:
        with sessions() as s:
            return purging.purge_case(s, case_id, **run.options())
    with sessions.begin() as s:
        done = purging.purge_case(s, case_id, **run.options())
    # Only after the commit: a file deleted for a rolled-back purge would be lost data.
    for path in done.files:
        path.unlink(missing_ok=True)
    if not done.is_empty:
        log.info("case.purged", case_ref=done.ref, inbound=done.inbound, blobs=done.blobs)
    return done


def purge_pass(
    sessions: sessionmaker[Session], raw_days: int, attachments_dir: Path | None
) -> Callable[[datetime], int]:
    """The daily purge stage's ``run_once``: cases purged this pass."""

    def run_once(now: datetime) -> int:
        report = purge(sessions, older_than_days=raw_days, now=now, attachments_dir=attachments_dir)
        return len(report.cases)

    return run_once
