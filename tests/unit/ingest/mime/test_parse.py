"""Unit tests for ingest.mime.parse: headers, bodies, attachments, identity and limits."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import ParseError
from ingest.mime.charsets import decode_text
from ingest.mime.filenames import safe_filename
from ingest.mime.header_text import decode_header_text
from ingest.mime.parse import parse_message
from ingest.mime.parsed import Address, ParsedMail

BASE_HEADERS = (
    "From: Ann Customer <ann@example.com>",
    "To: support@example.net",
    "Subject: Printer on fire",
    "Date: Tue, 02 Apr 2024 10:00:00 +0200",
    "Message-ID: <abc@example.com>",
)


def mail(
    *headers: str, body: bytes | str = "Hello.\n", base: tuple[str, ...] = BASE_HEADERS
) -> bytes:
    """A message from header lines (overriding same-named base headers) and a body."""
    names = {h.split(":", 1)[0].lower() for h in headers}
    lines = [h for h in base if h.split(":", 1)[0].lower() not in names] + list(headers)
    raw_body = body.encode() if isinstance(body, str) else body
    return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + raw_body


def multipart(subtype: str, *parts: bytes, boundary: str = "BOUNDARY") -> tuple[str, bytes]:
    """A Content-Type header value and body for a multipart of already-built parts."""
    sep = f"--{boundary}\r\n".encode()
    body = b"".join(sep + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"', body


def part(*headers: str, body: bytes | str = "") -> bytes:
    """One MIME part: header lines, a blank line, the body."""
    raw_body = body.encode() if isinstance(body, str) else body
    return "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n" + raw_body


# --- headers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("=?utf-8?q?Caf=C3=A9_ouvert?=", "Café ouvert"),
        ("=?ISO-8859-1?B?Y2Fm6Q==?=", "café"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        ("=?utf-8?q?a?= plain =?utf-8?q?b?=", "a plain b"),
        ("=?utf-8?b?5pel?= =?utf-8?b?5pys?=", "日本"),
        ("=?utf-8?b?5pc=?= =?utf-8?b?pQ==?=", "日"),
        ("=?x-unknown?q?caf=E9?=", "café"),
        ("=?utf-8?q?caf=E9?=", "café"),
        ("=?ks_c_5601-1987?b?sO24v73AtM+02S4=?=", "고맙습니다."),
        ("=?gb2312?b?1tDOxA==?=", "中文"),
        ("=?utf-8*en?q?hi?=", "hi"),
        ("=?utf-8?q?line=0D=0Abreak?=", "line break"),
        ("=?utf-8?b?SGk!?=", "Hi"),
        ("folded\r\n  line", "folded  line"),
        ("=?broken", "=?broken"),
    ],
)
def test_header_text_decodes_encoded_words(raw: str, expected: str) -> None:
    """RFC 2047 words decode (also with unknown or lying charsets) to one line of text."""
    assert decode_header_text(raw) == expected


def test_eight_bit_utf8_subject_is_read_as_utf8() -> None:
    """A raw UTF-8 Subject (RFC 6532) decodes to text, not mojibake."""
    parsed = parse_message(mail("Subject: Grüße aus Köln"))
    assert parsed.subject == "Grüße aus Köln"


def test_eight_bit_latin1_subject_falls_back_to_cp1252() -> None:
    """A raw Latin-1 Subject that is not UTF-8 still decodes without raising."""
    raw = mail().replace(b"Subject: Printer on fire", b"Subject: caf\xe9 cr\xe8me")
    assert parse_message(raw).subject == "café crème"


def test_headers_keep_order_and_are_unfolded() -> None:
    """Every top-level header is kept, in order, with folding removed."""
    parsed = parse_message(mail("Received: from a\r\n\tby b", "X-Thing: =?utf-8?q?=C3=A9?="))
    names = [name for name, _ in parsed.headers]
    assert names == ["From", "To", "Subject", "Date", "Message-ID", "Received", "X-Thing"]
    assert parsed.header("received") == "from a\tby b"
    assert parsed.header("x-thing") == "é"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Message-ID: <abc@example.com>", "<abc@example.com>"),
        ("Message-ID: abc@example.com", "<abc@example.com>"),
        ("Message-ID:   < abc@example.com >  ", "<abc@example.com>"),
        ("Message-ID: (comment) <abc@example.com> (more)", "<abc@example.com>"),
        ("Message-ID: <abc@example.com> <def@example.com>", "<abc@example.com>"),
        ("Message-ID: 12345", "<12345>"),
        ("Message-ID: <>", None),
        ("Message-ID:", None),
    ],
)
def test_message_id_is_normalised(header: str, expected: str | None) -> None:
    """Message-ID becomes '<id>' form, tolerating spaces, comments and missing brackets."""
    assert parse_message(mail(header)).message_id == expected


def test_missing_message_id_is_none() -> None:
    """A message without Message-ID parses, with message_id None."""
    base = tuple(h for h in BASE_HEADERS if not h.startswith("Message-ID"))
    assert parse_message(mail(base=base)).message_id is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("In-Reply-To: <a@x>", ("<a@x>",)),
        ("In-Reply-To: Your message of Monday <a@x>", ("<a@x>",)),
        ("In-Reply-To: a@x", ("<a@x>",)),
        ("In-Reply-To: <a@x> (Ann's message) <b@x>", ("<a@x>", "<b@x>")),
        ("In-Reply-To: your mail of yesterday", ()),
    ],
)
def test_in_reply_to_is_normalised(header: str, expected: tuple[str, ...]) -> None:
    """In-Reply-To keeps every id in '<id>' form and ignores prose around them."""
    assert parse_message(mail(header)).in_reply_to == expected


def test_references_keep_first_and_latest_when_capped() -> None:
    """A very long References keeps 100 ids: the first and the 99 most recent."""
    ids = [f"<id{n}@x>" for n in range(250)]
    parsed = parse_message(mail("References: " + "\r\n ".join(ids)))
    assert len(parsed.references) == 100
    assert parsed.references[0] == "<id0@x>"
    assert parsed.references[1:] == tuple(ids[-99:])


def test_references_are_deduplicated_across_headers() -> None:
    """Repeated References headers are merged in order without duplicates."""
    parsed = parse_message(mail("References: <a@x> <b@x>", "References: <b@x>\r\n\t<c@x>"))
    assert parsed.references == ("<a@x>", "<b@x>", "<c@x>")


@pytest.mark.parametrize(
    ("header", "field", "expected"),
    [
        ("From: Ann <ann@example.com>", "from_", Address("Ann", "ann@example.com")),
        ("From: ann@example.com", "from_", Address("", "ann@example.com")),
        (
            "From: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>",
            "from_",
            Address("Zoë", "zoe@example.com"),
        ),
        ('From: "Doe, John" <jd@example.com>', "from_", Address("Doe, John", "jd@example.com")),
        ("From: Ann <ann@example.com", "from_", Address("Ann", "ann@example.com")),
        ("From: ann@example.com (Ann", "from_", Address("Ann", "ann@example.com")),
        ("From: " + "(" * 3000 + "x@y", "from_", None),
        ("Reply-To: a@x, B <b@x>", "reply_to", (Address("", "a@x"), Address("B", "b@x"))),
        ("Cc: undisclosed-recipients:;", "cc", ()),
        ("To: a@x,, b@x", "to", (Address("", "a@x"), Address("", "b@x"))),
    ],
)
def test_addresses_are_parsed_leniently(header: str, field: str, expected: object) -> None:
    """Address headers yield Address values, falling back to getaddresses on garbage."""
    assert getattr(parse_message(mail(header)), field) == expected


@pytest.mark.parametrize(
    "header",
    [
        "From: alice@example.com <mallory@evil.example>",
        'From: "alice@example.com" <mallory@evil.example>',
        "From: alice@example.com (Alice) <mallory@evil.example>",
        "From: Alice alice@example.com <mallory@evil.example>",
    ],
)
def test_the_address_in_angle_brackets_is_the_sender(header: str) -> None:
    """RFC 5322 name-addr: an address-like display name is a name, never the sender."""
    sender = parse_message(mail(header)).from_
    assert sender is not None
    assert sender.addr == "mallory@evil.example"


def test_a_hostile_header_of_angle_brackets_parses_in_linear_time() -> None:
    """The angle-address reading stays linear on a long header (bounded analysis)."""
    header = "From: " + "a@b <" * 20000 + "x@y>"
    sender = parse_message(mail(header)).from_
    assert sender is not None
    assert sender.addr == "x@y"


def test_long_address_list_is_parsed() -> None:
    """A To header with thousands of recipients parses, via the fast fallback path."""
    header = "To: " + ", ".join(f"u{n}@example.com" for n in range(3000))
    parsed = parse_message(mail(header))
    assert len(parsed.to) == 3000
    assert parsed.to[-1] == Address("", "u2999@example.com")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Date: Tue, 02 Apr 2024 10:00:00 +0200", datetime(2024, 4, 2, 8, 0, tzinfo=UTC)),
        ("Date: Tue, 02 Apr 2024 10:00:00 -0000", datetime(2024, 4, 2, 10, 0, tzinfo=UTC)),
        ("Date: 2 Apr 2024 10:00 EST", datetime(2024, 4, 2, 15, 0, tzinfo=UTC)),
        ("Date: yesterday", None),
        ("Date: Tue, 02 Apr 2024 10:00:00 +9999", None),
        ("Date:", None),
    ],
)
def test_date_is_aware_utc_or_none(header: str, expected: datetime | None) -> None:
    """Date becomes aware UTC; a zone-less date is UTC; garbage gives None."""
    assert parse_message(mail(header)).date == expected


# --- body text ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "body", "expected", "has_defect"),
    [
        ("utf-8", "Grüße".encode(), "Grüße", False),
        ("iso-8859-1", "Grüße".encode("latin-1"), "Grüße", False),
        ("iso-8859-1", b"\x93quoted\x94", "\u201cquoted\u201d", False),
        ("utf-8", b"caf\xe9", "café", True),
        ("us-ascii", "naïve".encode(), "naïve", True),
        ("ks_c_5601-1987", "고맙습니다".encode("cp949"), "고맙습니다", False),
        ("gb2312", "中文€".encode("gb18030"), "中文€", False),
        ("unicode-1-1-utf-7", b"Hi +AOk-", "Hi é", False),
        ("iso-8859-8-i", "שלום".encode("iso-8859-8"), "שלום", False),
        ("x-unknown", "Grüße".encode(), "Grüße", True),
        ('"UTF-8"', "Grüße".encode(), "Grüße", False),
        ("zlib", b"plain", "plain", False),
        ("utf-7", b"C++ is +great", "C++ is +great", True),
    ],
)
def test_body_charsets_decode_without_raising(
    charset: str, body: bytes, expected: str, has_defect: bool
) -> None:
    """Bodies decode with the declared charset or a sane fallback, noting lying charsets."""
    raw = mail(f"Content-Type: text/plain; charset={charset}", body=body)
    parsed = parse_message(raw)
    assert parsed.text == expected
    assert any("charset" in d for d in parsed.defects) is has_defect


@pytest.mark.parametrize(
    ("data", "label", "expected"),
    [
        (b"\xff\xfeA\x00B", "utf-16", "A\ufffd"),
        (b"\x1b$BF|K\\\x1b(B", "iso-2022-jp", "日本"),
        (b"\x1b$B\x2d\x21\x1b(B", "iso-2022-jp", "\ufffd"),
        (b"plain", "undefined", "plain"),
    ],
)
def test_decode_text_never_raises(data: bytes, label: str | None, expected: str) -> None:
    """decode_text falls back (superset codecs, latin-1, replacement) instead of raising."""
    assert decode_text(data, label)[0] == expected


@pytest.mark.parametrize("data", [b"\x81\x8d", b"caf\xe9 \x81", bytes(range(128, 256))])
def test_undeclared_eight_bit_text_never_reads_c1_controls(data: bytes) -> None:
    """8-bit bytes without a charset decode somehow, but never to C1 control characters."""
    text, _ = decode_text(data, None)
    assert not any("\x80" <= char <= "\x9f" for char in text)


def test_base64_body_with_garbage_is_salvaged() -> None:
    """A base64 body with bad padding decodes what it can and records a defect."""
    encoded = base64.b64encode(b"Hello world, this is fine.")[:-2] + b"!*"
    raw = mail("Content-Transfer-Encoding: base64", body=encoded + b"Q")
    parsed = parse_message(raw)
    assert parsed.text.startswith("Hello world, this is fine")
    assert "body: invalid base64, decoded what could be decoded" in parsed.defects


def test_bad_quoted_printable_keeps_text_and_records_defect() -> None:
    """Invalid quoted-printable escapes are kept literally and noted as a defect."""
    raw = mail(
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        body=b"Gr=C3=BC=C3=9Fe =ZZ 100%=\r\nsoft",
    )
    parsed = parse_message(raw)
    assert parsed.text == "Grüße =ZZ 100%soft"
    assert "body: invalid quoted-printable escapes kept as is" in parsed.defects


def test_html_only_mail_is_converted_to_text() -> None:
    """An HTML-only message gets readable text and keeps the raw HTML."""
    html = "<html><head><style>p{}</style></head><body><p>Hi&nbsp;there</p><p>Bye</p></body>"
    parsed = parse_message(mail("Content-Type: text/html; charset=utf-8", body=html))
    assert parsed.text == "Hi there\n\nBye"
    assert parsed.html == html


def test_alternative_prefers_plain_and_keeps_html() -> None:
    """multipart/alternative yields the plain part as text, the HTML as html, no attachments."""
    ctype, body = multipart(
        "alternative",
        part("Content-Type: text/plain; charset=utf-8", body="Plain version"),
        part("Content-Type: text/html; charset=utf-8", body="<p>HTML version</p>"),
    )
    parsed = parse_message(mail(ctype, body=body))
    assert (parsed.text, parsed.html, parsed.attachments) == (
        "Plain version",
        "<p>HTML version</p>",
        (),
    )


def test_blank_plain_part_falls_back_to_html() -> None:
    """An empty text/plain alternative does not hide the HTML body's text."""
    ctype, body = multipart(
        "alternative",
        part("Content-Type: text/plain", body="\r\n"),
        part("Content-Type: text/html", body="<div>Real text</div>"),
    )
    assert parse_message(mail(ctype, body=body)).text == "Real text"


def test_nested_multipart_finds_body_and_attachments() -> None:
    """mixed(alternative(plain, related(html, image)), pdf) gives text, html and two attachments."""
    png = b"\x89PNG\r\n\x1a\nfake"
    related_type, related_body = multipart(
        "related",
        part("Content-Type: text/html", body='<p>See <img src="cid:logo@x"></p>'),
        part(
            "Content-Type: image/png",
            "Content-ID: <logo@x>",
            "Content-Transfer-Encoding: base64",
            body=base64.b64encode(png),
        ),
        boundary="REL",
    )
    alt_type, alt_body = multipart(
        "alternative",
        part("Content-Type: text/plain", body="See the logo"),
        part(related_type, body=related_body),
        boundary="ALT",
    )
    ctype, body = multipart(
        "mixed",
        part(alt_type, body=alt_body),
        part(
            "Content-Type: application/pdf",
            'Content-Disposition: attachment; filename="report.pdf"',
            body="%PDF-1.4",
        ),
    )
    parsed = parse_message(mail(ctype, body=body))
    assert parsed.text == "See the logo"
    assert parsed.html == '<p>See <img src="cid:logo@x"></p>'
    image, pdf = parsed.attachments
    assert (image.content_type, image.data, image.is_inline, image.content_id) == (
        "image/png",
        png,
        True,
        "logo@x",
    )
    assert image.filename == "attachment-1.png"
    assert (pdf.filename, pdf.data, pdf.is_inline) == ("report.pdf", b"%PDF-1.4", False)


def test_second_inline_text_part_is_body_text_too() -> None:
    """Every inline text part of a multipart/mixed is body text, in order (a list footer)."""
    ctype, body = multipart(
        "mixed",
        part("Content-Type: text/plain", body="Body"),
        part("Content-Type: text/plain", body="-- list footer"),
    )
    parsed = parse_message(mail(ctype, body=body))
    assert parsed.text == "Body\n\n-- list footer\n"
    assert parsed.attachments == ()


def test_attached_text_file_is_not_the_body() -> None:
    """A text/plain part with Content-Disposition: attachment is an attachment, not text."""
    ctype, body = multipart(
        "mixed",
        part(
            "Content-Type: text/plain",
            'Content-Disposition: attachment; filename="a.txt"',
            body="x",
        ),
        part("Content-Type: text/plain", body="The body"),
    )
    parsed = parse_message(mail(ctype, body=body))
    assert parsed.text == "The body"
    assert [a.filename for a in parsed.attachments] == ["a.txt"]


def test_forwarded_message_is_an_rfc822_attachment() -> None:
    """A message/rfc822 part is an attachment whose bytes parse again to the inner mail."""
    inner = mail("Subject: Inner subject", "Message-ID: <inner@x>", body="Inner body\r\n")
    ctype, body = multipart(
        "mixed",
        part("Content-Type: text/plain", body="FYI"),
        part("Content-Type: message/rfc822", body=inner),
    )
    parsed = parse_message(mail(ctype, body=body))
    assert parsed.text == "FYI"
    (forwarded,) = parsed.attachments
    assert (forwarded.content_type, forwarded.filename) == ("message/rfc822", "attachment-1.eml")
    again = parse_message(forwarded.data)
    assert (again.subject, again.message_id, again.text) == (
        "Inner subject",
        "<inner@x>",
        "Inner body\n",
    )


def test_delivery_status_report_keeps_text_and_status_part() -> None:
    """A DSN keeps the human-readable text and the delivery-status part as an attachment."""
    status = (
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    )
    ctype, body = multipart(
        "report; report-type=delivery-status",
        part("Content-Type: text/plain", body="Delivery to gone@example.net failed."),
        part("Content-Type: message/delivery-status", body=status),
        part("Content-Type: text/rfc822-headers", body="Subject: Hello\r\n"),
    )
    parsed = parse_message(mail(ctype, body=body))
    assert parsed.text == "Delivery to gone@example.net failed."
    assert parsed.content_type == "multipart/report"
    kinds = [a.content_type for a in parsed.attachments]
    assert kinds == ["message/delivery-status", "text/rfc822-headers"]
    assert b"Status: 5.1.1" in parsed.attachments[0].data
    assert parsed.tree is not None
    assert parsed.tree.get_content_type() == "multipart/report"


def test_report_without_readable_part_uses_status_as_text() -> None:
    """A report with only a delivery-status part still gives agents some text."""
    ctype, body = multipart(
        "report; report-type=delivery-status",
        part(
            "Content-Type: message/delivery-status",
            body="Reporting-MTA: dns; mx\r\n\r\nStatus: 5.0.0\r\n",
        ),
    )
    assert "Status: 5.0.0" in parse_message(mail(ctype, body=body)).text


# --- filenames -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("report.pdf", "application/pdf", "report.pdf"),
        ("../../etc/passwd", "text/plain", "passwd"),
        ("C:\\Windows\\x.exe", "application/octet-stream", "x.exe"),
        ("C:x.exe", "application/octet-stream", "C_x.exe"),
        ("evil\x00.txt", "text/plain", "evil.txt"),
        ("line\r\nbreak.txt", "text/plain", "line break.txt"),
        ("invoice\u202efdp.exe", "application/octet-stream", "invoicefdp.exe"),
        (".bashrc", "text/plain", "bashrc"),
        ("..", "text/plain", "attachment-3.txt"),
        ("/", "image/png", "attachment-3.png"),
        ("  ", "message/rfc822", "attachment-3.eml"),
        (None, "application/x-unheard-of", "attachment-3.bin"),
        (None, "message/delivery-status", "attachment-3.txt"),
        ("=?utf-8?q?r=C3=A9sum=C3=A9.pdf?=", "application/pdf", "résumé.pdf"),
        ("a" * 300 + ".pdf", "application/pdf", "a" * 196 + ".pdf"),
        ("b" * 300, "application/pdf", "b" * 200),
    ],
)
def test_safe_filename_is_never_a_path(name: str | None, content_type: str, expected: str) -> None:
    """Filenames lose directories, controls and leading dots; unusable ones get a fallback."""
    assert safe_filename(name, content_type, 3) == expected


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="C:\\\\Windows\\\\x.exe"', "x.exe"),
        ("attachment; filename*=UTF-8''%2E%2E%2Fetc%2Fshadow%00.txt", "shadow.txt"),
        ("attachment; filename*0*=UTF-8''%E2%82%AC; filename*1=\" rates.txt\"", "€ rates.txt"),
        ('attachment; filename="=?UTF-8?B?w6lsw6hyZS5wZGY=?="', "élère.pdf"),
        ('attachment; filename="a\r\n b.txt"', "a b.txt"),
        ("attachment", "attachment-1.pdf"),
    ],
)
def test_attachment_filenames_from_headers_are_safe(disposition: str, expected: str) -> None:
    """RFC 2231/2047 names decode, and hostile names in real headers come out safe."""
    ctype, body = multipart(
        "mixed",
        part("Content-Type: text/plain", body="see attached"),
        part("Content-Type: application/pdf", f"Content-Disposition: {disposition}", body="x"),
    )
    (attachment,) = parse_message(mail(ctype, body=body)).attachments
    assert attachment.filename == expected


# --- content key ---------------------------------------------------------------


def test_content_key_ignores_trace_headers() -> None:
    """The same mail with extra Received/Delivered-To/Return-Path headers has the same key."""
    plain = mail()
    traced = (
        b"Return-Path: <bounce@example.com>\r\nDelivered-To: support@example.net\r\n"
        b"X-Original-To: help@example.net\r\nReceived: from mx by relay; Tue, 2 Apr 2024\r\n"
        + plain
    )
    assert parse_message(plain).content_key == parse_message(traced).content_key


def test_content_key_ignores_line_endings() -> None:
    """The same mail delivered with LF instead of CRLF line endings has the same key."""
    crlf = mail(body="line one\r\nline two\r\n")
    assert (
        parse_message(crlf).content_key == parse_message(crlf.replace(b"\r\n", b"\n")).content_key
    )


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (
            (
                b"Message-ID: <k1@example.org>\r\nFrom: A <a@example.org>\r\nSubject: Key\r\n"
                b"Date: Mon, 07 Dec 2026 09:00:00 +0000\r\n\r\nLine one\r\nLine two\r\n\r\n"
            ),
            "9a37736b233cc2f8f73d9e93af9d269f3e547fb3c33facf8037d9d56318b185e",
        ),
        (
            (
                b"Message-ID: <k2@example.org>\r\nFrom: A <a@example.org>\r\nSubject: Key\r\n"
                b"\r\nOld Mac\rline\r\nend\r\r\n"
            ),
            "c5878a039eb520671903e635fb57d7f5e81621e663bdb350a415cf58fc60249b",
        ),
    ],
)
def test_content_key_is_the_one_stored_by_earlier_releases(raw: bytes, key: str) -> None:
    """Keys are stored: a copy that arrives after an upgrade must still be found a duplicate.

    Pinned from release 431417b, before the CRLF fast path (with and without lone CRs).
    """
    assert parse_message(raw).content_key == key


@pytest.mark.parametrize(
    "changed",
    [
        mail(body="A different message reusing the Message-ID.\n"),
        mail("Subject: Printer on fire again"),
        mail("Date: Tue, 02 Apr 2024 10:00:01 +0200"),
        mail("From: Bob <bob@example.com>"),
    ],
)
def test_content_key_differs_when_content_differs(changed: bytes) -> None:
    """A reused Message-ID with a different body or headers gets a different key."""
    assert parse_message(changed).content_key != parse_message(mail()).content_key


# --- limits and garbage -------------------------------------------------------


def nested(depth: int) -> bytes:
    """A message with multiparts nested ``depth`` levels deep."""
    inner = part("Content-Type: text/plain", body="deep")
    for level in range(depth - 1):
        ctype, body = multipart("mixed", inner, boundary=f"b{level}")
        inner = part(ctype, body=body)
    ctype, body = multipart("mixed", inner, boundary="top")
    return mail(ctype, body=body)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not an RFC 5322 message: empty"),
        (b"\r\n\r\n  \r\n", "not an RFC 5322 message: empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not an RFC 5322 message: no header fields"),
        (b"just some words\nand more", "not an RFC 5322 message: no header fields"),
        (nested(25), "MIME nesting deeper than 20"),
        (nested(1200), "MIME nesting"),
    ],
)
def test_unparseable_input_raises_parse_error(raw: bytes, reason: str) -> None:
    """Empty, headerless or too deeply nested input raises ParseError with a clear reason."""
    with pytest.raises(ParseError) as caught:
        parse_message(raw)
    assert caught.value.reason.startswith(reason)


def test_nesting_within_limit_parses() -> None:
    """Nesting up to max_depth is fine and the deep text is found."""
    assert parse_message(nested(10)).text == "deep"


def test_too_many_parts_raises_parse_error() -> None:
    """A message with more parts than max_parts is refused."""
    ctype, body = multipart("mixed", *[part("Content-Type: text/plain", body="x")] * 20)
    raw = mail(ctype, body=body)
    assert parse_message(raw, max_parts=21).text.split() == ["x"] * 20
    with pytest.raises(ParseError, match="more than 20 MIME parts"):
        parse_message(raw, max_parts=20)


def test_messy_bytes_do_not_crash() -> None:
    """NULs, lines over 998 characters and 8-bit header bytes are tolerated."""
    raw = mail(body=b"a\x00b " + b"x" * 5000 + b"\r\n").replace(b"Printer", b"Pr\xffinter\x00")
    parsed = parse_message(raw)
    assert parsed.text.startswith("ab x")
    assert "\x00" not in parsed.subject
    assert "body: NUL characters removed" in parsed.defects


def test_bom_and_leading_blank_lines_are_tolerated() -> None:
    """A UTF-8 BOM or blank lines before the headers are dropped with a defect."""
    parsed = parse_message(b"\xef\xbb\xbf\r\n" + mail())
    assert parsed.subject == "Printer on fire"
    assert "leading BOM or whitespace before the headers removed" in parsed.defects


def test_missing_boundary_keeps_body_as_text() -> None:
    """A multipart without its boundary keeps the body as text and records the defect."""
    parsed = parse_message(mail("Content-Type: multipart/mixed", body="just text"))
    assert parsed.text == "just text"
    assert "NoBoundaryInMultipartDefect" in parsed.defects


def test_hostile_content_type_header_is_bounded() -> None:
    """Huge or recursive Content-Type headers neither hang nor crash the parse."""
    for value in ('text/plain; name="' + "a;" * 40_000 + '"', "text/plain; a=" + "(" * 5000):
        assert isinstance(parse_message(mail(f"Content-Type: {value}")), ParsedMail)


# --- properties ----------------------------------------------------------------


def assert_parses_or_refuses(raw: bytes) -> None:
    """parse_message returns a ParsedMail or raises ParseError with a reason; nothing else."""
    try:
        parsed = parse_message(raw)
    except ParseError as error:
        reason = error.reason
    else:
        assert isinstance(parsed, ParsedMail)
        assert len(parsed.content_key) == 64
        return
    assert reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_raise_parse_error(raw: bytes) -> None:
    """Arbitrary bytes never raise anything but ParseError."""
    assert_parses_or_refuses(raw)


HEADER_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "=?utf-8?q?=C3=A9?=",
            "=?x-bogus?b?////?=",
            "<a@b> (c",
            "((((",
            '"unterminated',
            "a@b, , <>",
            "text/plain; charset=utf-7",
            "text/html; charset=x-unknown",
            "attachment; filename*=utf-8''%00%2F..",
            "base64",
            "quoted-printable",
        ]
    ),
)
HEADER_NAMES = st.sampled_from(
    [
        "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
        "References", "Content-Type", "Content-Disposition", "Content-Transfer-Encoding",
        "Content-ID",
    ]
)  # fmt: skip


@st.composite
def mime_parts(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A generated MIME entity: random headers and either a leaf body or nested parts."""
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6))
    lines = [f"{name}: {value}".replace("\r", "").replace("\n", "") for name, value in headers]
    if depth < 3 and draw(st.booleans()):
        children = draw(st.lists(mime_parts(depth + 1), max_size=3))
        kind = draw(st.sampled_from(["mixed", "alternative", "related", "report"]))
        ctype, body = multipart(kind, *children, boundary=f"B{depth}")
        lines.append(ctype)
    else:
        body = draw(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mime_parts())
def test_generated_mime_parses_or_raises_parse_error(raw: bytes) -> None:
    """Structured but hostile generated MIME never raises anything but ParseError."""
    assert_parses_or_refuses(b"From: a@b\r\n" + raw)
