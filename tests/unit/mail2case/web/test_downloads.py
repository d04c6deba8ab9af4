"""Download names: only a name (no path, no control characters), in RFC 5987 form too."""

from __future__ import annotations

import pytest

from mail2case.web.pages import content_disposition, safe_download_name


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\evil.html", "evil.html"),
        ("a\x00b\x07c\u202etxt.exe", "abctxt.exe"),  # NUL, BEL and a right-to-left override
        ("...", "attachment"),
        ("", "attachment"),
    ],
)
def test_safe_download_name(given: str, safe: str) -> None:
    """Path parts, control and format characters go; an empty result gets a neutral name."""
    assert safe_download_name(given) == safe


def test_content_disposition_is_an_attachment_with_both_name_forms() -> None:
    """An ASCII fallback with unsafe characters replaced, and the UTF-8 name percent-encoded."""
    header = content_disposition('Zoë "quoted" <b>.html')
    assert header.startswith('attachment; filename="Zo_ _quoted_ _b_.html"; ')
    assert header.endswith("filename*=UTF-8''Zo%C3%AB%20%22quoted%22%20%3Cb%3E.html")
