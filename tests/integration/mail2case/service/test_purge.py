"""Retention purge on a real SQLite database: raw mail and blobs go, the case record stays."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from mail2case import app
from mail2case.config.settings import config_from_mapping
from mail2case.service.purge import purge
from storage import inbound
from storage.models import Blob, Case, CaseEvent, Inbound, Message
from tests.support.daemon import Site
from tests.support.mail import plain_mail

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def mail(sender: str, subject: str, attachment: bytes) -> bytes:
    """A customer message carrying one attachment."""
    msg = plain_mail(sender, subject, "The attached log shows the failure.")
    msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="a.log")
    return msg.as_bytes()


def open_case(sessions: sessionmaker[Session], raw: bytes, now: datetime) -> int:
    """Store and process one message; returns its case id."""
    config = config_from_mapping({"support": {"address": "support@example.com"}})
    with sessions.begin() as s:
        row_id = inbound.add_inbound(s, raw=raw, source="smtp", now=now, mail_from="x@y").id
    outcome = app.build_processor(config, sessions).handle(row_id, now)
    assert outcome is not None
    assert outcome.case_id is not None
    return outcome.case_id


def close(sessions: sessionmaker[Session], case_id: int, at: datetime) -> None:
    """Close a case as of ``at``."""
    with sessions.begin() as s:
        s.execute(update(Case).where(Case.id == case_id).values(status="closed", closed_at=at))


def database(tmp_path: Path) -> sessionmaker[Session]:
    """A migrated SQLite database in the test's directory."""
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    _, sessions = app.open_database(config_from_mapping({"database": {"url": url}}))
    return sessions


def test_purge_drops_raw_and_blob_keeps_record(tmp_path: Path) -> None:
    """A case closed past retention loses raw bytes and attachment content, not its history."""
    sessions = database(tmp_path)
    old = open_case(
        sessions, mail("a@old.example", "Old", b"old-log" * 100), NOW - timedelta(days=60)
    )
    close(sessions, old, NOW - timedelta(days=40))
    report = purge(sessions, older_than_days=30, now=NOW, attachments_dir=None)
    assert report.as_dict()["cases"] == 1
    assert report.as_dict()["blobs"] == 1
    with sessions() as s:
        raw = s.scalars(select(Inbound).where(Inbound.case_id == old)).one()
        assert (raw.raw, raw.reason) == (b"", "purged")
        assert raw.size > 0  # what the message weighed stays known
        assert [b.data for b in s.scalars(select(Blob))] == [b""]
        texts = [m.text for m in s.scalars(select(Message).where(Message.case_id == old))]
        assert any("attached log" in t for t in texts)
        kinds = [e.kind for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == old))]
        assert kinds[-1] == "purged"
    again = purge(sessions, older_than_days=30, now=NOW, attachments_dir=None)
    assert again.cases == []


def test_recent_open_and_shared_are_kept(tmp_path: Path) -> None:
    """Open cases, cases closed recently, and blobs an open case shares are left alone."""
    sessions = database(tmp_path)
    shared = b"shared-log" * 50
    old = open_case(sessions, mail("a@old.example", "Old", shared), NOW - timedelta(days=90))
    close(sessions, old, NOW - timedelta(days=80))
    recent = open_case(sessions, mail("b@new.example", "New", b"x" * 10), NOW - timedelta(days=9))
    close(sessions, recent, NOW - timedelta(days=5))
    open_case(sessions, mail("c@open.example", "Open", shared), NOW - timedelta(days=1))
    report = purge(sessions, older_than_days=30, now=NOW, attachments_dir=None)
    assert [c.blobs for c in report.cases] == [0]
    with sessions() as s:
        assert all(b.data for b in s.scalars(select(Blob)))
        kept = s.scalars(select(Inbound).where(Inbound.case_id != old)).all()
        assert all(r.raw and r.reason != "purged" for r in kept)


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    """A dry run counts what would go and leaves every byte in place."""
    sessions = database(tmp_path)
    old = open_case(sessions, mail("a@old.example", "Old", b"z" * 300), NOW - timedelta(days=60))
    close(sessions, old, NOW - timedelta(days=40))
    report = purge(sessions, older_than_days=30, now=NOW, attachments_dir=None, dry_run=True)
    assert report.as_dict()["inbound"] == 1
    with sessions() as s:
        assert all(r.raw for r in s.scalars(select(Inbound)))
        assert not s.scalars(select(CaseEvent).where(CaseEvent.kind == "purged")).all()


def test_blob_files_on_disk_are_deleted(tmp_path: Path) -> None:
    """With attachments_dir, a purged blob's file is removed after the commit."""
    files = tmp_path / "blobs"
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    config = config_from_mapping(
        {
            "database": {"url": url},
            "support": {"address": "support@example.com"},
            "processing": {"attachments_dir": str(files)},
        }
    )
    _, sessions = app.open_database(config)
    with sessions.begin() as s:
        row_id = inbound.add_inbound(
            s, raw=mail("a@old.example", "Old", b"q" * 500), source="smtp", now=NOW, mail_from="x"
        ).id
    outcome = app.build_processor(config, sessions).handle(row_id, NOW - timedelta(days=60))
    assert outcome is not None
    assert outcome.case_id is not None
    close(sessions, outcome.case_id, NOW - timedelta(days=40))
    assert [p for p in files.rglob("*") if p.is_file()]
    purge(sessions, older_than_days=30, now=NOW, attachments_dir=files)
    assert not [p for p in files.rglob("*") if p.is_file()]


def test_purge_and_customers_cli(tmp_path: Path) -> None:
    """``purge --json`` needs a period, and ``customers list --json`` shows configured customers."""
    site = Site(
        tmp_path,
        extra='[[customers]]\nname = "Acme"\ndomains = ["acme.example"]\nplan = "premier"\n',
    )
    site.write()
    assert site.cli("purge", check=False).returncode == 2
    result = json.loads(site.cli("purge", "--older-than", "30", "--dry-run", "--json").stdout)
    assert result["cases"] == 0
    assert result["dry_run"] is True
    customers = site.cli_json("customers", "list")
    assert [(c["name"], c["plan"], c["configured"]) for c in customers] == [
        ("Acme", "premier", True)
    ]
