"""The sender honours a row's Cc, sender name, Reply-To and attachments, through a real relay."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from sqlalchemy import select

from notifications.render import build_environment
from notifications.sender import Sender, SenderSettings
from notifications.transports import SmtpTransport
from storage import blobs, outbox
from storage.models import Outbox
from tests.support.smtp_sink import SmtpSink

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
SUPPORT = "support@example.com"
DATA = b"%PDF-1.4 not really\n"
SHA = hashlib.sha256(DATA).hexdigest()
RELAY_CONTEXT: dict[str, Any] = {
    "case_ref": 1042,
    "ref_token": "[#1042]",
    "subject": "Database down",
    "text": "Hello Ann,\n\n<b>fixed</b> & deployed.",
    "agent_name": "Alice",
    "support_name": "Example Support",
    "support_address": SUPPORT,
}


def queue_relay(sessions: sessionmaker[Session], root: Path | None, **extra: Any) -> None:
    """Store the blob and queue one relay row with Cc, name, Reply-To and an attachment."""
    with sessions.begin() as s:
        blobs.store_blob(s, SHA, DATA, root)
        outbox.enqueue(
            s,
            kind="relay",
            case_id=None,
            to_addrs=["ann@customer.example"],
            subject="Re: Database down [#1042]",
            template="relay",
            context=RELAY_CONTEXT,
            message_id="<case1042.relay@example.com>",
            in_reply_to="<orig@customer.example>",
            references=["<orig@customer.example>"],
            dedupe_key="relay:1042:x:y",
            now=NOW,
        )
        row = s.scalars(select(Outbox)).one()
        row.cc_addrs = ["bob@customer.example"]
        row.from_name = "Alice via Example Support"
        row.attachments = [
            {"sha256": SHA, "filename": "report.pdf", "content_type": "application/pdf"}
        ]
        for name, value in extra.items():
            setattr(row, name, value)


def sender(sessions: sessionmaker[Session], sink: SmtpSink, root: Path | None) -> Sender:
    """A sender to ``sink`` with the packaged templates."""
    settings = SenderSettings(
        from_name="Example Support", from_addr=SUPPORT, loop_marker=SUPPORT, attachments_dir=root
    )
    transport = SmtpTransport(sink.host, sink.port, starttls=False, timeout=5.0)
    log = structlog.get_logger("test.sender")
    return Sender(sessions, transport, build_environment(), settings, log, rng=random.Random(1))


@pytest.mark.parametrize("on_disk", [False, True])
def test_relay_row_goes_out_as_queued(
    sessions: sessionmaker[Session], tmp_path: Path, on_disk: bool
) -> None:
    """Cc recipients get it, the agent's name shows, the file is attached, HTML is escaped."""
    root = tmp_path / "blobs" if on_disk else None
    queue_relay(sessions, root)
    with SmtpSink() as sink:
        assert sender(sessions, sink, root).run_once(NOW) == 1
        (delivery,) = sink.deliveries
    assert set(delivery.rcpt_tos) == {"ann@customer.example", "bob@customer.example"}
    msg = delivery.message()
    assert msg["From"].addresses[0].display_name == "Alice via Example Support"
    assert msg["Reply-To"] == SUPPORT
    assert msg["Cc"] == "bob@customer.example"
    assert msg["Auto-Submitted"] is None
    (attached,) = msg.iter_attachments()
    assert (attached.get_filename(), attached.get_content()) == ("report.pdf", DATA)
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    assert "&lt;b&gt;fixed&lt;/b&gt; &amp; deployed." in html.get_content()


def test_row_reply_to_wins_and_missing_blob_fails(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """A row's Reply-To replaces the default; a row naming an unknown blob fails, not loops."""
    queue_relay(sessions, None, reply_to="support+1042-abcdef0123@example.com")
    with SmtpSink() as sink:
        assert sender(sessions, sink, None).run_once(NOW) == 1
        assert sink.deliveries[0].message()["Reply-To"] == "support+1042-abcdef0123@example.com"
    with sessions.begin() as s:
        row = s.scalars(select(Outbox)).one()
        row.status = "queued"
        row.attachments = [{"sha256": "0" * 64, "filename": "x", "content_type": "text/plain"}]
    with SmtpSink() as sink:
        assert sender(sessions, sink, tmp_path).run_once(NOW) == 0
        assert sink.deliveries == []
    with sessions() as s:
        failed = s.scalars(select(Outbox)).one()
        assert failed.status == "failed"
        assert "missing" in (failed.last_error or "")
