"""Rendering of outgoing mail: headers, parts, escaping, injection, template lookup, times."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any

import pytest

from notifications.errors import RenderError
from notifications.render import Envelope, build_environment, local_time, render_mail

if TYPE_CHECKING:
    from email.message import EmailMessage
    from pathlib import Path

    import jinja2

NOW = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)

ACK_CONTEXT: dict[str, Any] = {
    "case_ref": 1042,
    "ref_token": "[#1042]",
    "subject": "Database down",
    "customer_name": "Ann Customer",
    "customer_address": "ann@customer.example",
    "plan": "premier",
    "priority": "high",
    "priority_reason": "customer stated High in the subject",
    "first_response_words": "within 1 hour",
    "first_response_due": "2026-11-30T12:00:00+00:00",
    "customer_timezone": "Europe/Berlin",
    "support_name": "Example Support",
    "support_address": "support@example.com",
}

CLOCK_CONTEXT: dict[str, Any] = {
    "case_ref": 1042,
    "ref_token": "[#1042]",
    "subject": "Database down",
    "customer_address": "ann@customer.example",
    "plan": "standard",
    "priority": "medium",
    "clock_kind": "first response",
    "due_utc": "2026-11-30T12:00:00+00:00",
    "customer_timezone": "Europe/Berlin",
    "team_timezone": "Europe/London",
    "time_left_words": "1 hour 10 minutes left",
}

NOTIFY_CONTEXT: dict[str, Any] = {
    key: ACK_CONTEXT[key]
    for key in (
        "case_ref",
        "ref_token",
        "subject",
        "customer_name",
        "customer_address",
        "plan",
        "priority",
        "priority_reason",
    )
} | {
    "due_words": "first response within 1 hour",
    "due_at": "2026-11-30T12:00:00+00:00",
    "team_timezone": "Europe/London",
    "text": "Our database is down.\nPlease help.",
    "attachments": [{"filename": "db.log", "content_type": "text/plain", "size": 2048}],
    "is_new_case": True,
}

# The contexts of rows queued before the ``local`` filter: each time already formatted,
# no zone. Such rows are rendered after an upgrade.
LEGACY_ACK_CONTEXT: dict[str, Any] = {
    k: v for k, v in ACK_CONTEXT.items() if k != "customer_timezone"
} | {"first_response_due_local": "Mon 30 Nov 2026 13:00 CET"}
LEGACY_CLOCK_CONTEXT: dict[str, Any] = {
    k: v for k, v in CLOCK_CONTEXT.items() if k not in {"customer_timezone", "team_timezone"}
} | {
    "due_customer_local": "Mon 30 Nov 2026 13:00 CET",
    "due_team_local": "Mon 30 Nov 2026 12:00 GMT",
}
LEGACY_NOTIFY_CONTEXT: dict[str, Any] = {
    k: v for k, v in NOTIFY_CONTEXT.items() if k not in {"due_at", "team_timezone"}
} | {"due_local_team": "Mon 30 Nov 2026 12:00 GMT"}


def envelope(**overrides: Any) -> Envelope:
    """An acknowledgement's envelope with ``overrides`` applied."""
    values: dict[str, Any] = {
        "from_name": "Example Support",
        "from_addr": "support@example.com",
        "to": ("ann@customer.example",),
        "reply_to": "support@example.com",
        "subject": "[#1042] Database down",
        "message_id": "<ack-1042.abc@example.com>",
        "in_reply_to": "<orig@customer.example>",
        "references": ("<orig@customer.example>",),
        "loop_marker": "support@example.com",
    }
    return Envelope(**(values | overrides))


def render(template: str = "ack", context: dict[str, Any] | None = None, **kw: Any) -> bytes:
    """Render with the packaged templates and return the wire bytes."""
    env = build_environment()
    msg = render_mail(env, template, context or ACK_CONTEXT, envelope(**kw), now=NOW)
    return msg.as_bytes()


def parse(data: bytes) -> EmailMessage:
    """Parse wire bytes back the way a receiving client would."""
    return BytesParser(policy=policy.default).parsebytes(data)


def header_lines(data: bytes) -> list[str]:
    """The header section's unfolded lines."""
    head = data.split(b"\n\n", 1)[0].decode("ascii")
    return re.sub(r"\r?\n[ \t]", " ", head).splitlines()


def test_ack_carries_threading_and_rfc3834_headers() -> None:
    """An acknowledgement has From with the name, threading ids, Auto-Submitted and X-Loop."""
    msg = parse(render())
    assert msg["From"].addresses[0].display_name == "Example Support"
    assert msg["From"].addresses[0].addr_spec == "support@example.com"
    assert msg["To"] == "ann@customer.example"
    assert msg["Reply-To"] == "support@example.com"
    assert msg["Subject"] == "[#1042] Database down"
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"] == "<ack-1042.abc@example.com>"
    assert msg["In-Reply-To"] == "<orig@customer.example>"
    assert msg["References"] == "<orig@customer.example>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Loop"] == "support@example.com"


def test_human_mail_has_no_auto_submitted() -> None:
    """auto_submitted "no" (a relayed agent reply) leaves out the robot headers."""
    msg = parse(render(auto_submitted="no"))
    assert "Auto-Submitted" not in msg
    assert "X-Auto-Response-Suppress" not in msg


def test_cc_and_extra_headers_are_set() -> None:
    """Cc recipients and extra headers appear as given."""
    msg = parse(
        render(cc=("b@customer.example", "c@customer.example"), extra_headers=(("X-Case", "1042"),))
    )
    assert [a.addr_spec for a in msg["Cc"].addresses] == [
        "b@customer.example",
        "c@customer.example",
    ]
    assert msg["X-Case"] == "1042"


def test_ack_is_multipart_alternative_with_text_first() -> None:
    """With an HTML template the mail is multipart/alternative, plain text first."""
    msg = parse(render())
    assert msg.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]


def test_ack_text_quotes_reference_and_target() -> None:
    """The acknowledgement quotes the case token, the target in words and the due time."""
    body = parse(render()).get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "[#1042]" in text
    assert "within 1 hour" in text
    assert "Mon 30 Nov 2026 13:00 CET" in text
    assert "keep [#1042] in the subject" in text


def test_html_part_is_autoescaped_text_part_is_not() -> None:
    """Customer-controlled text is escaped in HTML and verbatim in plain text."""
    context = ACK_CONTEXT | {"subject": "<script>alert(1)</script>"}
    msg = parse(render(context=context))
    html, text = msg.get_body(("html",)), msg.get_body(("plain",))
    assert html is not None
    assert text is not None
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.get_content()
    assert "<script>" not in html.get_content()
    assert "<script>alert(1)</script>" in text.get_content()


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Hello\r\nBcc: evil@attacker.example"},
        {"subject": "Hello\nBcc: evil@attacker.example"},
        {"subject": "Hello\rBcc: evil@attacker.example"},
        {"subject": "Hello\u2028Bcc: evil@attacker.example"},
        {"from_name": "Support\r\nBcc: evil@attacker.example"},
        {"to": ("ann@customer.example\r\nBcc: evil@attacker.example",)},
        {"reply_to": "support@example.com\nBcc: evil@attacker.example"},
        {"extra_headers": (("X-Case", "1042\r\nBcc: evil@attacker.example"),)},
        {"message_id": "<a@b>\r\nBcc: evil@attacker.example"},
        {"references": ("<a@b>\r\nBcc: evil@attacker.example",)},
    ],
)
def test_line_breaks_in_header_values_cannot_inject_headers(overrides: dict[str, Any]) -> None:
    """CR/LF in a subject, name, address or header value becomes a space, never a header."""
    data = render(**overrides)
    lines = header_lines(data)
    assert not [line for line in lines if line.lower().startswith("bcc:")]
    assert "Bcc" not in parse(data)
    assert len([line for line in lines if line.startswith("Subject:")]) == 1


def test_subject_line_break_is_replaced_by_space() -> None:
    """The injected text stays in the subject as harmless words."""
    msg = parse(render(subject="Hello\r\nBcc: evil@attacker.example"))
    assert msg["Subject"] == "Hello Bcc: evil@attacker.example"


def test_non_ascii_name_with_comma_stays_one_address() -> None:
    """A display name with non-ASCII and a comma is encoded and reads back as one address."""
    msg = parse(render(from_name="Zoë's Support, Inc"))
    (address,) = msg["From"].addresses
    assert address.display_name == "Zoë's Support, Inc"
    assert address.addr_spec == "support@example.com"


def test_long_references_fold_between_ids_not_into_encoded_words() -> None:
    """Long message ids stay intact: folded at spaces, never RFC 2047 encoded."""
    refs = tuple(f"<{i}.{'x' * 90}@customer.example>" for i in range(5))
    data = render(references=refs, in_reply_to=refs[-1])
    assert b"=?" not in data.split(b"\n\n", 1)[0]
    msg = parse(data)
    assert msg["References"].split() == list(refs)
    assert msg["In-Reply-To"] == refs[-1]


def test_override_directory_wins(tmp_path: Path) -> None:
    """A template in the override directory is used instead of the packaged one."""
    (tmp_path / "ack.txt.j2").write_text("Custom ack for {{ ref_token }}\n", encoding="utf-8")
    env = build_environment(tmp_path)
    msg = render_mail(env, "ack", ACK_CONTEXT, envelope(), now=NOW)
    body = msg.get_body(("plain",))
    assert body is not None
    assert body.get_content() == "Custom ack for [#1042]\n"


def test_template_without_html_gives_text_plain(tmp_path: Path) -> None:
    """A template with no HTML variant renders a single text/plain part."""
    (tmp_path / "note.txt.j2").write_text("Just text, {{ name }}.\n", encoding="utf-8")
    msg = render_mail(build_environment(tmp_path), "note", {"name": "Ann"}, envelope(), now=NOW)
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content() == "Just text, Ann.\n"


def test_broken_include_in_html_is_an_error_not_a_missing_part(tmp_path: Path) -> None:
    """Only the HTML template itself may be absent; a missing include inside it fails."""
    (tmp_path / "note.txt.j2").write_text("text\n", encoding="utf-8")
    (tmp_path / "note.html.j2").write_text("{% include 'nowhere.html.j2' %}", encoding="utf-8")
    with pytest.raises(RenderError, match="nowhere"):
        render_mail(build_environment(tmp_path), "note", {}, envelope(), now=NOW)


def test_missing_text_template_is_a_render_error() -> None:
    """The text template is required."""
    with pytest.raises(RenderError, match=r"no-such\.txt\.j2"):
        render_mail(build_environment(), "no-such", {}, envelope(), now=NOW)


def test_missing_context_key_is_a_render_error() -> None:
    """StrictUndefined: a context without a key the template uses fails loudly."""
    context = {k: v for k, v in ACK_CONTEXT.items() if k != "ref_token"}
    with pytest.raises(RenderError, match="ref_token"):
        render_mail(build_environment(), "ack", context, envelope(), now=NOW)


def test_error_raised_inside_a_template_is_a_render_error(tmp_path: Path) -> None:
    """Any exception from an (overridden) template becomes a RenderError."""
    (tmp_path / "bad.txt.j2").write_text("{{ n + 'x' }}", encoding="utf-8")
    with pytest.raises(RenderError, match="TypeError"):
        render_mail(build_environment(tmp_path), "bad", {"n": 1}, envelope(), now=NOW)


def test_attachments_make_multipart_mixed() -> None:
    """Attachments follow the body in a multipart/mixed with their filenames and bytes."""
    env = build_environment()
    attachments = [("report.pdf", "application/pdf", b"%PDF-1.4"), ("x\r\n.bin", "bogus", b"\0")]
    msg = render_mail(env, "ack", ACK_CONTEXT, envelope(), now=NOW, attachments=attachments)
    parsed = parse(msg.as_bytes())
    assert parsed.get_content_type() == "multipart/mixed"
    found = [
        (p.get_filename(), p.get_content_type(), p.get_content()) for p in parsed.iter_attachments()
    ]
    assert found == [
        ("report.pdf", "application/pdf", b"%PDF-1.4"),
        ("x .bin", "application/octet-stream", b"\0"),
    ]


def test_non_ascii_body_is_quoted_printable() -> None:
    """Bodies are 7-bit safe on the wire (no reliance on 8BITMIME)."""
    context = ACK_CONTEXT | {"customer_name": "Zoë"}
    data = render(context=context)
    assert all(byte < 0x80 for byte in data)
    body = parse(data).get_body(("plain",))
    assert body is not None
    assert "Hello Zoë," in body.get_content()


@pytest.mark.parametrize(
    ("template", "context"),
    [
        ("ack", ACK_CONTEXT),
        ("notify", NOTIFY_CONTEXT),
        ("notify", NOTIFY_CONTEXT | {"is_new_case": False, "attachments": []}),
        ("reminder", CLOCK_CONTEXT),
        ("escalation", CLOCK_CONTEXT | {"time_left_words": "overdue by 25 minutes"}),
    ],
)
def test_packaged_templates_render_with_their_documented_context(
    template: str, context: dict[str, Any]
) -> None:
    """Every packaged template renders from exactly the keys its header comment lists."""
    body = parse(render(template, context)).get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "[#1042]" in text
    assert "{{" not in text


def test_notify_lists_attachments_and_text() -> None:
    """The agent notification shows the customer's text and lists attachments."""
    body = parse(render("notify", NOTIFY_CONTEXT)).get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert text.startswith("New case [#1042]")
    assert "Our database is down." in text
    assert "db.log (text/plain, 2.0 kB)" in text
    assert "customer stated High in the subject" in text


def bodies(
    template: str, context: dict[str, Any], env: jinja2.Environment | None = None
) -> list[str]:
    """The decoded text of each body part (the multipart boundary is random)."""
    msg = render_mail(env or build_environment(), template, context, envelope(), now=NOW)
    return [str(part.get_content()) for part in msg.walk() if not part.is_multipart()]


@pytest.mark.parametrize(
    ("at", "zone", "expected"),
    [
        ("2026-12-07T13:00:00+00:00", "Europe/Berlin", "Mon 07 Dec 2026 14:00 CET"),
        ("2026-06-07T13:00:00Z", "Europe/Berlin", "Sun 07 Jun 2026 15:00 CEST"),
        (datetime(2026, 12, 7, 13, tzinfo=UTC), "America/New_York", "Mon 07 Dec 2026 08:00 EST"),
        (
            datetime(2026, 12, 7, 13, tzinfo=UTC).replace(tzinfo=None),
            "Europe/London",
            "Mon 07 Dec 2026 13:00 GMT",
        ),
        ("2026-12-07T13:00:00", "UTC", "Mon 07 Dec 2026 13:00 UTC"),
        (None, "Europe/Berlin", "-"),
        ("", "Europe/Berlin", "-"),
    ],
)
def test_local_time_shows_utc_in_the_zone(
    at: datetime | str | None, zone: str, expected: str
) -> None:
    """A UTC time (ISO text or datetime; no offset means UTC) in the zone; "-" for none."""
    assert local_time(at, zone) == expected


def test_local_filter_renders_a_time_in_the_zone_it_is_given(tmp_path: Path) -> None:
    """``{{ at | local(tz) }}`` in a template is local_time, for a time or none."""
    (tmp_path / "when.txt.j2").write_text(
        "{{ at | local(tz) }}|{{ no | local(tz) }}\n", encoding="utf-8"
    )
    context = {"at": "2026-12-07T13:00:00+00:00", "no": None, "tz": "Europe/Berlin"}
    assert bodies("when", context, build_environment(tmp_path)) == ["Mon 07 Dec 2026 14:00 CET|-\n"]


@pytest.mark.parametrize("zone", ["Nowhere/City", "../etc/passwd", ""])
def test_unknown_time_zone_is_a_render_error(zone: str) -> None:
    """A zone that names none fails the mail (a RenderError), never renders a wrong time."""
    with pytest.raises(RenderError, match="ack"):
        render_mail(
            build_environment(),
            "ack",
            ACK_CONTEXT | {"customer_timezone": zone},
            envelope(),
            now=NOW,
        )


@pytest.mark.parametrize(
    ("template", "context", "legacy", "shown"),
    [
        ("ack", ACK_CONTEXT, LEGACY_ACK_CONTEXT, ["Mon 30 Nov 2026 13:00 CET"]),
        ("notify", NOTIFY_CONTEXT, LEGACY_NOTIFY_CONTEXT, ["Mon 30 Nov 2026 12:00 GMT"]),
        (
            "reminder",
            CLOCK_CONTEXT,
            LEGACY_CLOCK_CONTEXT,
            ["Mon 30 Nov 2026 12:00 GMT (team)", "Mon 30 Nov 2026 13:00 CET (customer)"],
        ),
        (
            "escalation",
            CLOCK_CONTEXT,
            LEGACY_CLOCK_CONTEXT,
            ["Mon 30 Nov 2026 12:00 GMT (team)", "Mon 30 Nov 2026 13:00 CET (customer)"],
        ),
    ],
)
def test_rows_queued_before_the_local_filter_render_as_before(
    template: str, context: dict[str, Any], legacy: dict[str, Any], shown: list[str]
) -> None:
    """A row whose context holds its times formatted renders the mail a new row does."""
    new, old = bodies(template, context), bodies(template, legacy)
    assert old == new
    assert all(words in old[0] for words in shown)


def test_legacy_formatted_text_is_shown_as_it_was_queued() -> None:
    """The old row's own text is shown, not a time computed again (it has no zone)."""
    legacy = LEGACY_NOTIFY_CONTEXT | {"due_local_team": "Tue 01 Dec 2026 09:00 GMT"}
    assert "by Tue 01 Dec 2026 09:00 GMT" in bodies("notify", legacy)[0]


def test_override_template_for_the_earlier_context_renders_new_rows(tmp_path: Path) -> None:
    """An operator's template still using the formatted keys gets them from a new row."""
    (tmp_path / "reminder.txt.j2").write_text(
        "{{ due_team_local }} / {{ due_customer_local }}\n", encoding="utf-8"
    )
    env = build_environment(tmp_path)
    assert bodies("reminder", CLOCK_CONTEXT, env) == [
        "Mon 30 Nov 2026 12:00 GMT / Mon 30 Nov 2026 13:00 CET\n"
    ]


def text_of(template: str, context: dict[str, Any]) -> str:
    """The plain-text body ``template`` renders for ``context``."""
    body = parse(render(template, context)).get_body(("plain",))
    assert body is not None
    return str(body.get_content())


@pytest.mark.parametrize(("name", "greeting"), [("Zoë", "Hello Zoë,"), ("", "Hello,")])
def test_ack_greets_by_name_or_neutrally(name: str, greeting: str) -> None:
    """With a name, by it; without one, a neutral greeting: never an address or a key."""
    text = text_of("ack", ACK_CONTEXT | {"customer_name": name})
    assert text.splitlines()[0] == greeting


NOTIFY_OPTIONAL = {
    "customer_name": "Ann",
    "sender_name": "Dave",
    "sender_address": "dave@customer.example",
    "opened_by": "alice@team.example",
    "attachments": [{"filename": "db.log", "content_type": "text/plain", "size": 2048}],
}


# Keys every row has, perhaps empty; the others are missing from rows of earlier versions.
EMPTY_WHEN_ABSENT: dict[str, Any] = {"customer_name": "", "attachments": []}


@pytest.mark.parametrize("key", sorted(NOTIFY_OPTIONAL))
@pytest.mark.parametrize("present", [True, False])
def test_notify_renders_with_and_without_each_optional_value(key: str, present: bool) -> None:
    """Each optional value shows when given and leaves no trace when empty or missing."""
    context = {k: v for k, v in NOTIFY_CONTEXT.items() if k != key}
    if present:
        context[key] = NOTIFY_OPTIONAL[key]
    elif key in EMPTY_WHEN_ABSENT:  # always in the context, perhaps empty
        context[key] = EMPTY_WHEN_ABSENT[key]
    text = text_of("notify", context)
    shown = {
        "customer_name": "Customer:  Ann <",
        "sender_name": "Dave <dave@customer.example>",
        "sender_address": "<dave@customer.example> (not the case's customer)",
        "opened_by": "Opened by: alice@team.example",
        "attachments": "db.log",
    }[key]
    if key == "sender_name":  # the name shows only beside its address
        context["sender_address"] = NOTIFY_OPTIONAL["sender_address"]
        text = text_of("notify", context)
    assert (shown in text) is present
    assert "None" not in text


@pytest.mark.parametrize(
    ("template", "context"),
    [("notify", NOTIFY_CONTEXT), ("reminder", CLOCK_CONTEXT), ("escalation", CLOCK_CONTEXT)],
)
def test_every_notice_to_agents_ends_with_the_commands(
    template: str, context: dict[str, Any]
) -> None:
    """Two lines at the end name the commands and where they go."""
    text = text_of(template, context).rstrip("\n")
    assert text.splitlines()[-2].startswith("Reply to answer the customer")
    assert "#status" in text.splitlines()[-1]
    assert "at the very top" in text


@pytest.mark.parametrize(
    ("template", "context"),
    [("notify", NOTIFY_CONTEXT), ("reminder", CLOCK_CONTEXT), ("escalation", CLOCK_CONTEXT)],
)
@pytest.mark.parametrize("board_url", ["https://desk.example", ""])
def test_notices_to_agents_link_the_case_page_when_the_board_has_an_address(
    template: str, context: dict[str, Any], board_url: str
) -> None:
    """With ``[web] base_url`` (the ``board_url`` global) a notice links /cases/REF; else not."""
    env = build_environment()
    env.globals["board_url"] = board_url
    msg = render_mail(env, template, context, envelope(), now=NOW)
    body = parse(msg.as_bytes()).get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    link = f"Case page: https://desk.example/cases/{context['case_ref']}"
    assert (link in text) is bool(board_url)
    assert ("Case page:" in text) is bool(board_url)
