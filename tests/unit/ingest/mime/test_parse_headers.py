"""Header text: legacy 8-bit bytes, encoded words, display names, case (issue 18, 10-13)."""

from __future__ import annotations

import base64

import pytest

from ingest.errors import ParseError
from ingest.mime.header_text import decode_header_text
from ingest.mime.parse import parse_message
from ingest.mime.parsed import Address


def raw_mail(headers: bytes, body: bytes = b"Hello.\r\n", charset: bytes | None = None) -> bytes:
    """A message from raw header bytes, with a text/plain body in ``charset`` if given."""
    declared = b""
    if charset is not None:
        declared = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=" + charset + b"\r\n"
    return headers + b"\r\nTo: support@example.net\r\n" + declared + b"\r\n" + body


def clean(text: str) -> bool:
    """No C1 control characters and no U+FFFD."""
    return not any("\x80" <= char <= "\x9f" or char == "\ufffd" for char in text)


@pytest.mark.parametrize(
    ("codec", "charset", "name", "subject"),
    [
        ("cp932", b"Shift_JIS", "山田太郎", "お問い合わせ 請求書について"),
        ("cp932", b"ISO-2022-JP", "山田太郎", "お問い合わせ 請求書について"),
        ("gb18030", b"GB2312", "张伟", "服务器故障请帮忙"),
        ("big5hkscs", b"Big5", "陳大文", "伺服器故障請幫忙"),
        ("cp949", b"EUC-KR", "김민수", "서버 문제 문의"),
        ("cp1251", b"windows-1251", "Иван Петров", "Проблема сервера"),
        ("cp1250", b"ISO-8859-2", "Paweł Żółw", "Odpowiedź, śruba"),
    ],
)
def test_raw_legacy_header_bytes_read_in_the_declared_charset(
    codec: str, charset: bytes, name: str, subject: str
) -> None:
    """Raw 8-bit From and Subject bytes read in the charset the body declares (or kin)."""
    headers = b"From: " + name.encode(codec) + b" <sender@example.org>\r\nSubject: "
    parsed = parse_message(raw_mail(headers + subject.encode(codec), charset=charset))
    assert parsed.subject == subject
    assert parsed.from_ == Address(name, "sender@example.org")
    assert parsed.header("Subject") == subject


def test_raw_legacy_header_bytes_without_any_declaration_are_detected() -> None:
    """With nothing declared, the header bytes of the whole message are detected together."""
    headers = (
        "From: Иван Петров <ivan@example.ru>\r\nSubject: Сервер не отвечает, "
        "база данных недоступна\r\nX-Note: Срочно"
    ).encode("cp1251")
    parsed = parse_message(raw_mail(headers))
    assert parsed.subject == "Сервер не отвечает, база данных недоступна"
    assert parsed.from_ == Address("Иван Петров", "ivan@example.ru")


def test_raw_utf8_header_bytes_stay_utf8() -> None:
    """RFC 6532: raw UTF-8 in headers is read as UTF-8 whatever the body declares."""
    headers = "From: Jörg <j@example.de>\r\nSubject: Grüße".encode()
    parsed = parse_message(raw_mail(headers, charset=b"iso-8859-1"))
    assert (parsed.subject, parsed.from_) == ("Grüße", Address("Jörg", "j@example.de"))


def test_raw_legacy_attachment_filename_is_read() -> None:
    """A Shift_JIS file name in Content-Disposition reads as Shift_JIS, not U+FFFD."""
    name = "見積書.pdf".encode("cp932")
    raw = (
        b"From: a@example.jp\r\nSubject: " + "見積".encode("cp932") + b"\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\n"
        + "本文".encode("cp932")
        + b'\r\n--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="'
        + name
        + b'"\r\n\r\n%PDF\r\n--B--\r\n'
    )
    parsed = parse_message(raw)
    assert [a.filename for a in parsed.attachments] == ["見積書.pdf"]


JAPANESE = "請求書のお問い合わせの件です"


def encoded(text: str, codec: str, label: str) -> str:
    """An RFC 2047 B-encoded word of ``text`` in ``codec`` under the charset ``label``."""
    return f"=?{label}?B?{base64.b64encode(text.encode(codec)).decode()}?="


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=?iso-8859-1?Q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
        ("=?us-ascii?Q?caf=C3=A9?=", "café"),
        (encoded("お問い合わせ", "cp932", "iso-2022-jp"), "お問い合わせ"),
        (encoded("Odpowiedź, śruba", "cp1250", "iso-8859-2"), "Odpowiedź, śruba"),
        (
            encoded("請求書のお問い合わせの件です", "cp932", "iso-8859-1"),
            "請求書のお問い合わせの件です",
        ),
    ],
)
def test_encoded_words_with_a_wrong_label_decode(value: str, expected: str) -> None:
    """An encoded word whose charset label does not fit its bytes still reads right."""
    text = decode_header_text(value)
    assert text == expected
    assert clean(text)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("=?utf-8?q?J=C3=B6rg?= =?utf-8?q?M=C3=BCller?= <j@example.de>", "JörgMüller"),
        ("=?utf-8?q?J=C3=B6rg_?= =?utf-8?q?M=C3=BCller?= <j@example.de>", "Jörg Müller"),
        ("=?utf-8?b?5bGx55Sw?=\r\n =?utf-8?b?5aSq6YOO?= <j@example.de>", "山田太郎"),
        ("=?utf-8?q?J=C3=B6rg?= M\xfcller <j@example.de>", "Jörg Müller"),
    ],
)
def test_space_between_adjacent_encoded_words_in_a_name_is_dropped(header: str, name: str) -> None:
    """RFC 2047 6.2: whitespace between adjacent encoded words is not displayed."""
    raw = b"From: " + header.encode("latin-1") + b"\r\nSubject: x\r\n\r\nx"
    assert parse_message(raw).from_ == Address(name, "j@example.de")


@pytest.mark.parametrize(
    "header",
    [
        "John.Smith@Example.COM",
        "John Smith <John.Smith@Example.COM>",
        '"Smith, John" <John.Smith@Example.COM>',
        "=?utf-8?q?J=C3=B6hn?= <John.Smith@Example.COM>",
        "John Smith <John.Smith@Example.COM> (Sales)",
        "John (the) Smith <John.Smith@Example.COM>",
    ],
)
def test_sender_keeps_its_case_as_written(header: str) -> None:
    """The local part (and domain) keep the sender's spelling; comparisons use ``key``."""
    parsed = parse_message(f"From: {header}\r\nSubject: x\r\n\r\nx".encode())
    assert parsed.from_ is not None
    assert parsed.from_.addr == "John.Smith@Example.COM"
    assert parsed.from_.key == "john.smith@example.com"


@pytest.mark.parametrize(
    "lead_in",
    [b"---- Original email message ----", b"Forwarded message:", b"\xef\xbb\xbf== exported =="],
)
def test_one_non_header_line_before_the_headers_is_skipped(lead_in: bytes) -> None:
    """An exporter's title line above the headers is skipped and noted, not quarantined."""
    raw = lead_in + b"\r\nFrom: Ann <ann@example.com>\r\nSubject: Help\r\n\r\nBody\r\n"
    parsed = parse_message(raw)
    assert (parsed.subject, parsed.text) == ("Help", "Body\n")
    assert "a line that is no header field before the headers skipped" in parsed.defects


def test_lead_in_line_followed_by_blank_lines_is_skipped() -> None:
    """Blank lines between the title line and the headers are skipped with it."""
    raw = b"---- Original email message ----\r\n\r\nFrom: a@example.com\r\nSubject: S\r\n\r\nB"
    assert parse_message(raw).subject == "S"


def test_two_non_header_lines_are_not_a_message() -> None:
    """Only one lead-in line is skipped: prose is still refused."""
    with pytest.raises(ParseError, match="no header fields"):
        parse_message(b"Dear support,\r\nthe printer is on fire.\r\nFrom: me\r\n")


def test_mbox_from_line_is_left_to_the_parser() -> None:
    """An mbox 'From ' separator is not a lead-in: the parser reads it as one."""
    raw = b"From ann@example.com Mon Apr  1 10:00:00 2024\r\nSubject: S\r\n\r\nB"
    parsed = parse_message(raw)
    assert parsed.subject == "S"
    assert "a line that is no header field before the headers skipped" not in parsed.defects
