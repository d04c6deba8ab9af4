"""Mislabelled, undeclared and damaged charsets decode cleanly (issue 18, class 10)."""

from __future__ import annotations

import pytest

from ingest.mime.charsets import clean_text, decode_text, header_charset

JAPANESE = "お問い合わせの件です、よろしく"


def has_c1(text: str) -> bool:
    """True when ``text`` holds a C1 control character."""
    return any("\x80" <= char <= "\x9f" for char in text)


@pytest.mark.parametrize(
    ("data", "label", "expected"),
    [
        ("Grüße aus Köln".encode(), "iso-8859-1", "Grüße aus Köln"),
        ("naïve café".encode(), "windows-1252", "naïve café"),
        ("Zażółć \u2013 gęślą".encode("cp1250"), "iso-8859-2", "Zażółć \u2013 gęślą"),
        ("Привет \u2013 мир".encode("cp1251"), "iso-8859-5", "Привет \u2013 мир"),
        ("お問い合わせです".encode("cp932"), "iso-2022-jp", "お問い合わせです"),
        (
            "お問い合わせの件です、よろしく".encode("cp932"),
            "iso-8859-1",
            "お問い合わせの件です、よろしく",
        ),
        (
            "服务器故障\uff0c请帮忙解决这个问题".encode("gb18030"),
            "us-ascii",
            "服务器故障\uff0c请帮忙解决这个问题",
        ),
    ],
)
def test_wrong_labels_are_corrected(data: bytes, label: str, expected: str) -> None:
    """UTF-8, Windows and CJK text under a wrong label decodes to the text, with a note."""
    text, note = decode_text(data, label)
    assert text == expected
    assert note is not None


@pytest.mark.parametrize(
    ("data", "label"),
    [
        ("Grüße aus Köln".encode("cp1252"), "iso-8859-1"),
        ("Ελληνικά κείμενα".encode("iso8859-7"), "iso-8859-7"),
        ("日本語".encode("euc_jp"), "euc-jp"),
        ("Straße".encode("iso8859-15"), "iso-8859-15"),
    ],
)
def test_right_labels_are_kept(data: bytes, label: str) -> None:
    """A label that fits its bytes is used as it is, without a note."""
    text, note = decode_text(data, label)
    assert (text, note) == (data.decode(label), None)


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("Здравствуйте, наш сервер не работает сегодня", "cp1251"),
        (
            (
                "Dzień dobry, od rana nasz serwer nie działa. Próbowaliśmy go uruchomić "
                "ponownie, ale wciąż pojawia się błąd połączenia z bazą danych."
            ),
            "cp1250",
        ),
        ("お問い合わせ\uff1aサーバーが停止しました", "cp932"),
        ("Bonjour, le serveur ne répond plus depuis ce matin", "cp1252"),
    ],
)
def test_undeclared_legacy_text_is_detected(text: str, codec: str) -> None:
    """8-bit text without a charset is read in the charset it is written in.

    Detection needs some text: a Polish sentence with two accents reads as well in
    Windows-1252, so the sample is a few sentences, as a mail body is.
    """
    assert decode_text(text.encode(codec), None)[0] == text


def test_damaged_utf8_keeps_its_text_and_replaces_the_bad_byte() -> None:
    """UTF-8 with one broken byte stays UTF-8 (not another charset) and says so."""
    data = "Привет, сервер не работает".encode() + b"\xff" + " совсем".encode()
    text, note = decode_text(data, "utf-8")
    assert text == "Привет, сервер не работает\ufffd совсем"
    assert note == "charset 'utf-8' did not decode; UTF-8 with bad bytes replaced"


@pytest.mark.parametrize(
    "data", [bytes(range(0x80, 0x100)), b"caf\xe9 \x81\x8d\x90", "x\x85y".encode("latin-1")]
)
@pytest.mark.parametrize("label", [None, "iso-8859-1", "iso-8859-2", "x-unknown"])
def test_no_decode_reads_c1_controls(data: bytes, label: str | None) -> None:
    """Whatever the bytes and label, the text never holds C1 control characters."""
    assert not has_c1(decode_text(data, label)[0])


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("test äöüßÄÖÜß€", "iso-8859-15"),
        ("ÄÖÜ äöü ß", "iso-8859-1"),
        ("Größe: 5 €", "windows-1252"),
    ],
)
def test_short_latin_text_that_looks_odd_keeps_its_label(text: str, label: str) -> None:
    """A short text in its declared Latin charset is trusted, however odd its letters."""
    assert decode_text(text.encode(label), label) == (text, None)


def test_c1_controls_in_utf8_text_read_as_windows_1252() -> None:
    """Windows-1252 encoded twice (U+0096 for an en dash) is read as that code page."""
    assert clean_text("a \x96 b \x93q\x94 \x81") == "a \u2013 b \u201cq\u201d "


@pytest.mark.parametrize(
    ("data", "labels", "expected"),
    [
        ("山田太郎 お問い合わせ".encode("cp932"), ["iso-2022-jp"], "cp932"),
        ("张伟 服务器".encode("gb18030"), ["gb2312"], "gb18030"),
        ("Иван Петров".encode("cp1251"), ["windows-1251"], "cp1251"),
        ("Grüße".encode(), ["iso-8859-1"], None),
        (b"plain", ["iso-8859-1"], None),
    ],
)
def test_header_charset_prefers_what_the_message_declares(
    data: bytes, labels: list[str], expected: str | None
) -> None:
    """Raw header bytes take a charset the message declares that reads them cleanly."""
    assert header_charset(data, labels) == expected
