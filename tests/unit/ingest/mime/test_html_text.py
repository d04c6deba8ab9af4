"""Unit tests for ingest.mime.html_text: readable text out of mail HTML, in linear time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.mime.html_text import html_to_text


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("Hello", "Hello"),
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("a<br>b<br/>c<BR >d", "a\nb\nc\nd"),
        ("a<br><br>b", "a\n\nb"),
        ("<div><div><div>deep</div></div></div>next", "deep\nnext"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
        ('Click <a href="https://x.example/">here</a> now', "Click here now"),
        ("<b>bold</b><i>italic</i>", "bolditalic"),
        ("spaced   \n\t out", "spaced out"),
        ("&lt;tag&gt; &amp; &eacute; &#233; &#xE9; &nbsp;x", "<tag> & é é é x"),
        ("AT&T &unknown; & more", "AT&T &unknown; & more"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
        ("<pre>  keep\n    indent</pre>after", "  keep\n    indent\n\nafter"),
        ("<h1>Title</h1>Text", "Title\n\nText"),
    ],
)
def test_structure_becomes_line_breaks(html: str, expected: str) -> None:
    """Block elements, <br> and list items become line breaks; inline markup disappears."""
    assert html_to_text(html) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<head><title>T</title><meta charset=utf-8></head><body>Body</body>", "Body"),
        ("<script>var x = '<p>no</p>';</script>shown", "shown"),
        ("<STYLE type=text/css>p { color: red }</STYLE>shown", "shown"),
        ("<!-- hidden --> shown <!-- also hidden -->", "shown"),
        ("<!DOCTYPE html><?xml version='1.0'?>shown", "shown"),
        ("<!--[if mso]><o:p>word</o:p><![endif]-->shown", "shown"),
        ("<![if !supportLists]>1.<![endif]> item", "1. item"),
        ("visible<script>never closed <p>gone", "visible"),
        ("<head><title>x</title>unclosed head<body>Body", "Body"),
        ("<title>only a title, never closed", "only a title, never closed"),
    ],
)
def test_hidden_parts_are_dropped(html: str, expected: str) -> None:
    """Head, title, script, style, comments and declarations produce no text."""
    assert html_to_text(html) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("a < b and c > d", "a < b and c > d"),
        ("I <3 mail", "I <3 mail"),
        ("trailing <", "trailing <"),
        ("unterminated <a href='x", "unterminated"),
        ("<p>unclosed paragraph", "unclosed paragraph"),
        ("</p></div>stray end tags", "stray end tags"),
        ("<!-- never closed", ""),
        ("", ""),
    ],
)
def test_broken_markup_is_tolerated(html: str, expected: str) -> None:
    """Bare '<', unterminated tags and stray end tags degrade as browsers do."""
    assert html_to_text(html) == expected


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "hostile",
    [
        "<a " * 100_000,
        "<!--" * 100_000,
        "<![" * 100_000,
        "</" * 100_000,
        "<" * 200_000,
        "<head>" * 100_000,
        "<script>" * 100_000,
        "<pre>" * 100_000,
        "&#" * 200_000,
        "<p>" * 200_000,
    ],
)
def test_hostile_markup_finishes_quickly(hostile: str) -> None:
    """Inputs that make html.parser quadratic (or raise) are handled in linear time."""
    assert isinstance(html_to_text(hostile), str)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("<>/!-?&#;ab pre script head=\"'\n"), max_size=300))
def test_markup_soup_never_raises(html: str) -> None:
    """Random markup-like text always converts to a string."""
    assert isinstance(html_to_text(html), str)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=500))
def test_arbitrary_text_never_raises(html: str) -> None:
    """Arbitrary Unicode text always converts to a string."""
    assert isinstance(html_to_text(html), str)
