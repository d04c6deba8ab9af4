"""Readable plain text from an HTML mail body: a small, linear-time converter."""

from __future__ import annotations

import html
import re

# html.parser on CPython 3.11 is quadratic on unterminated tags ('<a ' * 50_000
# takes minutes) and raises AssertionError on '<![' garbage, so this module
# tokenizes itself: every scan is a str.find that moves forward, never back.
_MAX_CHARS = 4_000_000

_HIDDEN = frozenset({"script", "style", "head", "title", "template"})
# Without an end tag these hide the rest of the document, as in browsers.
_SWALLOWING = frozenset({"script", "style"})
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table"})
_BLOCK = frozenset(
    {
        "address", "article", "aside", "center", "dd", "div", "dl", "dt", "fieldset",
        "figure", "footer", "form", "header", "hr", "main", "nav", "ol", "section", "tr",
        "ul", "body", "html",
    }
)  # fmt: skip
_CELL = frozenset({"td", "th"})

_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9:_-]*")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class _Sink:
    """Collects words and line breaks; collapses whitespace outside <pre>."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._line: list[str] = []
        self._space = False

    def words(self, text: str) -> None:
        """Add flowing text: any whitespace run becomes one space."""
        words = text.split()
        if not words:
            self._space = self._space or bool(text)
            return
        if (self._space or text[0].isspace()) and self._line:
            self._line.append(" ")
        self._line.append(" ".join(words))
        self._space = text[-1].isspace()

    def preformatted(self, text: str) -> None:
        """Add <pre> text verbatim, line breaks included."""
        first, *rest = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._line.append(first)
        for line in rest:
            self.hard_break()
            self._line.append(line)

    def space(self) -> None:
        """Separate what follows (a table cell) from what came before."""
        self._space = True

    def hard_break(self) -> None:
        """End the line even when it is empty (<br>)."""
        self._lines.append("".join(self._line))
        self._line = []
        self._space = False

    def soft_break(self, *, blank: bool = False) -> None:
        """End a non-empty line (blocks); ``blank`` also leaves an empty line."""
        if self._line:
            self.hard_break()
        if blank and self._lines and self._lines[-1]:
            self._lines.append("")
        self._space = False

    def text(self) -> str:
        """The collected text: lines right-stripped, at most one blank line in a row."""
        lines = [*self._lines, "".join(self._line)]
        out: list[str] = []
        for line in (raw.rstrip() for raw in lines):
            if line or (out and out[-1]):
                out.append(line)
        return "\n".join(out).strip("\n")


class _Converter:
    """One pass over the document, emitting into a _Sink."""

    def __init__(self, doc: str) -> None:
        self.doc = doc
        self.lower = doc.translate(_ASCII_LOWER)  # same length as doc, unlike str.lower()
        self.sink = _Sink()
        self.pre_depth = 0
        self.absent: set[str] = set()  # needles a find() already missed: never rescan

    def find(self, needle: str, pos: int) -> int:
        """Index of lower-case ``needle`` at or after ``pos``, or -1; a miss is never rescanned."""
        if needle in self.absent:
            return -1
        found = self.lower.find(needle, pos)
        if found < 0:
            self.absent.add(needle)
        return found

    def run(self) -> str:
        pos, end = 0, len(self.doc)
        while pos < end:
            lt = self.doc.find("<", pos)
            if lt < 0:
                self._emit(self.doc[pos:])
                break
            self._emit(self.doc[pos:lt])
            pos = self._markup(lt)
        return self.sink.text()

    def _emit(self, raw: str) -> None:
        if not raw:
            return
        text = html.unescape(raw)
        if self.pre_depth:
            self.sink.preformatted(text)
        else:
            self.sink.words(text)

    def _markup(self, lt: int) -> int:
        """Consume the markup starting at ``lt``; return where text resumes."""
        doc = self.doc
        if doc.startswith("<!--", lt):
            return _after(doc, "-->", lt + 4)
        nxt = doc[lt + 1 : lt + 2]
        if nxt in {"!", "?"}:  # doctype, CDATA, Outlook's <![if ...]>, processing instruction
            return _after(doc, ">", lt + 2)
        is_end = nxt == "/"
        name_match = _TAG_NAME.match(doc, lt + 2 if is_end else lt + 1)
        if name_match is None:
            self._emit("<")  # a bare '<' in text, as browsers treat it
            return lt + 1
        name = name_match.group().translate(_ASCII_LOWER)
        close = doc.find(">", name_match.end())
        if close < 0:
            return len(doc)  # an unterminated tag at the end is dropped
        if is_end:
            self._end_tag(name)
            return close + 1
        return self._start_tag(name, close + 1)

    def _start_tag(self, name: str, pos: int) -> int:
        if name in _HIDDEN:
            return self._skip_element(name, pos)
        self._structure(name)
        if name == "li":
            self.sink.words("- ")
        elif name == "pre":
            self.pre_depth += 1
        return pos

    def _end_tag(self, name: str) -> None:
        if name == "pre" and self.pre_depth:
            self.pre_depth -= 1
        if name != "br":  # '</br>' is a <br> in browsers, handled below
            self._structure(name)
        else:
            self.sink.hard_break()

    def _structure(self, name: str) -> None:
        if name == "br":
            self.sink.hard_break()
        elif name in _PARAGRAPH:
            self.sink.soft_break(blank=True)
        elif name in _BLOCK or name == "li":
            self.sink.soft_break()
        elif name in _CELL:
            self.sink.space()

    def _skip_element(self, name: str, pos: int) -> int:
        """Jump past a hidden element's content to its end tag."""
        close = self.find("</" + name, pos)
        if close >= 0:
            return close
        if name in _SWALLOWING:
            return len(self.doc)
        if name != "head":
            return pos  # an unclosed <title> or <template>: show what follows
        body = self.find("<body", pos)  # an unclosed <head> ends where <body> starts
        return body if body >= 0 else pos


def _after(doc: str, marker: str, start: int) -> int:
    found = doc.find(marker, start)
    return len(doc) if found < 0 else found + len(marker)


def html_to_text(html_doc: str) -> str:
    """Convert an HTML document to readable plain text.

    Drops script, style, head and title; breaks lines at block elements, <br>
    and list items; keeps link text; unescapes entities; collapses whitespace
    (outside <pre>). Runs in linear time; input past 4 million characters is
    ignored.
    """
    return _Converter(html_doc[:_MAX_CHARS]).run()
