"""What a new case queues: times as UTC with zone names, bare subjects, our Message-IDs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from mail2case import app
from mail2case.config.settings import config_from_mapping
from notifications.render import Envelope, build_environment, local_time, render_mail
from storage import cases, inbound
from storage.models import Outbox

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def open_case(tmp_path: Path, subject: str) -> tuple[int, datetime, dict[str, Outbox]]:
    """Open a case for a Berlin customer; its ref, first-response due time and rows by kind."""
    config = config_from_mapping(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'rows.db'}"},
            "support": {"address": "support@example.com", "message_id_domain": "Mail.Example"},
            "business_hours": {"timezone": "America/New_York"},
            "agents": {"team_address": "team@example.com"},
            "customers": [
                {"name": "Acme", "domains": ["acme.example"], "timezone": "Europe/Berlin"}
            ],
        }
    )
    engine, sessions = app.open_database(config)
    raw = (
        f"From: ann@acme.example\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
        "Message-ID: <m1@acme.example>\r\nDate: Thu, 26 Nov 2026 09:00:00 +0000\r\n\r\n"
        "Since this morning the export fails with an error.\r\n"
    ).encode()
    with sessions.begin() as s:
        row_id = inbound.add_inbound(
            s, raw=raw, source="smtp", now=NOW, mail_from="ann@acme.example"
        ).id
    outcome = app.build_processor(config, sessions).handle(row_id, NOW)
    assert outcome is not None
    assert outcome.case_ref is not None
    with sessions() as s:
        case = cases.case_by_ref(s, outcome.case_ref)
        assert case is not None
        assert case.first_response_due is not None
        rows = {row.kind: row for row in s.scalars(select(Outbox))}
        s.expunge_all()
    engine.dispose()
    return outcome.case_ref, case.first_response_due, rows


def text_of(row: Outbox) -> str:
    """The plain-text body the sender would render from ``row``."""
    envelope = Envelope("Support", "support@example.com", tuple(row.to_addrs), "s", "<a@b>")
    mail = render_mail(build_environment(), row.template, row.context, envelope, now=NOW)
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_times_travel_as_utc_with_the_zone_and_render_in_it(tmp_path: Path) -> None:
    """Ack and notification hold the due time in UTC and a zone; rendering zones it."""
    _, due, rows = open_case(tmp_path, "Export broken")
    ack, notify = rows["ack"].context, rows["notify"].context
    assert (ack["first_response_due"], ack["customer_timezone"]) == (
        due.isoformat(),
        "Europe/Berlin",
    )
    assert (notify["due_at"], notify["team_timezone"]) == (due.isoformat(), "America/New_York")
    assert not [key for key in (*ack, *notify) if key.endswith("_local") or "_local_" in key]
    assert f"(by {local_time(due, 'Europe/Berlin')})" in text_of(rows["ack"])
    assert f", by {local_time(due, 'America/New_York')}" in text_of(rows["notify"])


def test_subjects_lose_reply_and_forward_prefixes(tmp_path: Path) -> None:
    """Localized and repeated prefixes leave the ack and the notification subjects."""
    ref, _, rows = open_case(tmp_path, "AW: WG: Re[2]: Export broken")
    assert rows["ack"].subject == f"Re: Export broken [#{ref}]"
    assert rows["notify"].subject == f"New case: Export broken [#{ref}]"


def test_message_ids_name_the_case_at_the_lower_cased_domain(tmp_path: Path) -> None:
    """Both Message-IDs come from the one maker: the case, a random part, the domain."""
    ref, _, rows = open_case(tmp_path, "Export broken")
    ids = {row.message_id for row in rows.values()}
    assert len(ids) == 2
    assert all(re.fullmatch(rf"<case{ref}\.[0-9a-f]{{16}}@mail\.example>", i) for i in ids)
