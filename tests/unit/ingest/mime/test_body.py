"""The body text of multipart mail: every inline part of a mixed, forwards (issue 18, 8-9)."""

from __future__ import annotations

import pytest

from ingest.mime import body as body_module
from ingest.mime.html_text import html_to_text
from ingest.mime.parse import parse_message

HEAD = (
    "From: Ann <ann@example.com>\r\nTo: support@example.net\r\nSubject: Printer\r\n"
    "Message-ID: <abc@example.com>\r\nMIME-Version: 1.0\r\n"
)


def part(*headers: str, body: str = "") -> str:
    """One MIME part: header lines, a blank line, the body."""
    return "\r\n".join(headers) + "\r\n\r\n" + body


def multipart(subtype: str, *parts: str, boundary: str = "B") -> str:
    """A multipart entity (headers and body) of already-built parts."""
    inner = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"
    return part(f'Content-Type: multipart/{subtype}; boundary="{boundary}"', body=inner)


def message(entity: str) -> bytes:
    """A message whose top-level entity is ``entity``."""
    return (HEAD + entity).encode()


PLAIN = "Content-Type: text/plain; charset=utf-8"
HTML = "Content-Type: text/html; charset=utf-8"


def test_every_inline_text_part_of_a_mixed_is_kept_in_order() -> None:
    """A short plain part, then the main message as HTML: both are read, in order."""
    entity = multipart(
        "mixed",
        part(PLAIN, body="Please see below."),
        part(HTML, body="<p>The printer is <b>on fire</b>.</p>"),
    )
    parsed = parse_message(message(entity))
    assert parsed.text == "Please see below.\n\nThe printer is on fire.\n"
    assert parsed.html == "<p>The printer is <b>on fire</b>.</p>"
    assert parsed.attachments == ()


def test_text_around_an_attachment_keeps_its_order() -> None:
    """Apple Mail writes text, an inline image, more text: both texts, the image a part."""
    entity = multipart(
        "mixed",
        part(PLAIN, body="Before the picture."),
        part("Content-Type: image/png", "Content-Disposition: inline", body="PNG"),
        part(PLAIN, body="After the picture."),
    )
    parsed = parse_message(message(entity))
    assert parsed.text == "Before the picture.\n\nAfter the picture.\n"
    assert [a.content_type for a in parsed.attachments] == ["image/png"]


def test_alternative_still_chooses_one_rendition() -> None:
    """Plain text and HTML of the same content: the plain text only, the HTML kept."""
    entity = multipart(
        "alternative", part(PLAIN, body="Hello plain"), part(HTML, body="<p>Hello html</p>")
    )
    parsed = parse_message(message(entity))
    assert parsed.text == "Hello plain"
    assert parsed.html == "<p>Hello html</p>"


def test_alternative_with_a_blank_plain_part_reads_the_html() -> None:
    """A blank plain rendition is skipped for the HTML one."""
    entity = multipart("alternative", part(PLAIN, body="  \r\n"), part(HTML, body="<p>Hi</p>"))
    assert parse_message(message(entity)).text == "Hi"


def test_related_html_rendition_keeps_its_images_as_parts() -> None:
    """multipart/alternative of plain and related (HTML + image): plain text, image kept."""
    related = multipart(
        "related",
        part(HTML, body='<p>Logo: <img src="cid:logo"></p>'),
        part("Content-Type: image/png", "Content-ID: <logo>", body="PNG"),
        boundary="R",
    )
    entity = multipart("alternative", part(PLAIN, body="Logo attached"), related)
    parsed = parse_message(message(entity))
    assert parsed.text == "Logo attached"
    assert [(a.content_type, a.content_id) for a in parsed.attachments] == [("image/png", "logo")]


def test_other_text_renditions_are_not_attachments() -> None:
    """text/enriched beside text/plain is the same content again: dropped."""
    entity = multipart(
        "alternative",
        part(PLAIN, body="Plain"),
        part("Content-Type: text/enriched", body="<bold>Plain</bold>"),
    )
    parsed = parse_message(message(entity))
    assert (parsed.text, parsed.attachments) == ("Plain", ())


def test_named_text_part_after_the_body_is_a_file() -> None:
    """An inline text part with a file name after the body text is an attached file."""
    entity = multipart(
        "mixed",
        part(PLAIN, body="Log attached."),
        part(PLAIN, 'Content-Disposition: inline; filename="error.log"', body="E1\r\nE2"),
    )
    parsed = parse_message(message(entity))
    assert parsed.text == "Log attached."
    assert [a.filename for a in parsed.attachments] == ["error.log"]


INNER = (
    "From: Bob <bob@customer.test>\r\nTo: ann@example.com\r\nSubject: Broken again\r\n"
    "Message-ID: <inner@customer.test>\r\n"
)


def test_forward_as_attachment_with_empty_cover_reads_the_forwarded_text() -> None:
    """Forwarded as an attachment with no cover text: the forwarded message's text."""
    inner = INNER + part(PLAIN, body="The printer is broken again.")
    entity = multipart(
        "mixed", part(PLAIN, body="\r\n"), part("Content-Type: message/rfc822", body=inner)
    )
    parsed = parse_message(message(entity))
    assert parsed.text == "The printer is broken again."
    assert [a.content_type for a in parsed.attachments] == ["message/rfc822"]


def test_forwarded_html_with_its_own_attachment_reads_as_text_only() -> None:
    """The forwarded message's HTML is read as text; its attachment stays inside it."""
    inner = INNER + multipart(
        "mixed",
        part(HTML, body="<p>See the <i>photo</i>.</p>"),
        part("Content-Type: image/jpeg", 'Content-Disposition: attachment; filename="a.jpg"'),
        boundary="I",
    )
    entity = multipart("mixed", part("Content-Type: message/rfc822", body=inner))
    parsed = parse_message(message(entity))
    assert parsed.text == "See the photo."
    assert [a.filename for a in parsed.attachments] == ["attachment-1.eml"]


def test_cover_text_wins_over_the_forwarded_text() -> None:
    """With a cover note, the note is the text and the forward stays an attachment."""
    inner = INNER + part(PLAIN, body="Original")
    entity = multipart(
        "mixed", part(PLAIN, body="FYI"), part("Content-Type: message/rfc822", body=inner)
    )
    assert parse_message(message(entity)).text == "FYI"


def _counting_html_to_text(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every HTML the body reader turns into text, noted."""
    converted: list[str] = []

    def counting(html: str) -> str:
        converted.append(html)
        return html_to_text(html)

    monkeypatch.setattr(body_module, "html_to_text", counting)
    return converted


def test_an_html_rendition_after_a_plain_one_is_not_turned_into_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plain rendition is chosen whatever follows: its HTML twin is kept, not read."""
    converted = _counting_html_to_text(monkeypatch)
    related = multipart(
        "related",
        part(HTML, body="<p>Hello html</p>"),
        part(PLAIN, 'Content-Disposition: inline; filename="notes.txt"', body="a file"),
        boundary="R",
    )
    entity = multipart("alternative", part(PLAIN, body="Hello plain"), related)
    parsed = parse_message(message(entity))
    assert converted == []
    assert parsed.text == "Hello plain"
    assert parsed.html == "<p>Hello html</p>"
    # The named text after the HTML is still a file, as when the HTML was read.
    assert [a.filename for a in parsed.attachments] == ["notes.txt"]


@pytest.mark.parametrize("plain_body", ["  \r\n", None])
def test_html_is_read_when_no_plain_rendition_with_text_comes_first(
    monkeypatch: pytest.MonkeyPatch, plain_body: str | None
) -> None:
    """A blank plain rendition, or the HTML first: the HTML may be the text, so it is read."""
    converted = _counting_html_to_text(monkeypatch)
    html = part(HTML, body="<p>Hi</p>")
    parts = [part(PLAIN, body=plain_body), html] if plain_body else [html, part(PLAIN, body="Hi")]
    parse_message(message(multipart("alternative", *parts)))
    assert converted == ["<p>Hi</p>"]
