r"""The standard library's MIME parser, minus one scan of every part: same tree, less CPU.

CPython's feed parser (3.11 to 3.13) trims the line break that ends each MIME part
with ``NLCRE_eol.search(payload)``, where ``NLCRE_eol`` is ``(\r\n|\r|\n)\Z``.
A regex search anchored only at its end still tries every position of the part, so
each part is scanned once more, character by character, after the parser has read
it line by line: for mail with attachments, that scan was about 40% of the parse
(0.31 of 0.76 ms a message on the bench mix).

A match can only begin at one of the last two characters, so searching from there
finds the same match (see ``_EndOfLine``). The fix goes into a private copy of the
``email.feedparser`` module, not the shared one: nothing else in the process is
touched, and a Python whose parser no longer has ``NLCRE_eol`` gets its own parser
unchanged.
"""

from __future__ import annotations

import importlib.util
import re
from email import feedparser as _stock
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from email.message import Message
    from email.policy import Policy
    from types import ModuleType

__all__ = ["END_OF_LINE", "is_trimmed", "parse_bytes"]

_STOCK_END_OF_LINE = re.compile(r"(\r\n|\r|\n)\Z")


class _EndOfLine:
    """``NLCRE_eol`` with its search started where a match can begin.

    Every match ends at the end of the string and is at most two characters long, so
    no position before ``len(text) - 2`` can start one; from there the search tries the
    same alternatives in the same order, so the match (and ``group(0)``) is the same.
    """

    def search(self, text: str) -> re.Match[str] | None:
        return _STOCK_END_OF_LINE.search(text, max(len(text) - 2, 0))


END_OF_LINE = _EndOfLine()


def _private_feedparser() -> ModuleType:
    """A fresh instance of ``email.feedparser`` with ``END_OF_LINE``, or the stock one."""
    stock_pattern = getattr(_stock, "NLCRE_eol", None)
    spec = importlib.util.find_spec("email.feedparser")
    if (
        not isinstance(stock_pattern, re.Pattern)
        or stock_pattern.pattern != _STOCK_END_OF_LINE.pattern
        or spec is None
        or spec.loader is None
    ):
        return _stock  # a parser that changed: leave it as it is
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.NLCRE_eol = END_OF_LINE  # type: ignore[attr-defined]  # the module is untyped here
    return module


_FEEDPARSER = _private_feedparser()


def is_trimmed() -> bool:
    """Whether the parser in use has the end-anchored search (False: the stock parser)."""
    return _FEEDPARSER is not _stock


def parse_bytes(raw: bytes, policy: Policy) -> Message:
    """``BytesParser(policy=policy).parsebytes(raw)``, by the trimmed parser.

    The whole message is fed at once; the feed parser's result does not depend on how
    its input is split (``BytesParser`` feeds 8,192 characters at a time).

    Raises:
        RecursionError: the MIME nesting is deeper than the parser's recursion.
    """
    parser = _FEEDPARSER.BytesFeedParser(policy=policy)
    parser.feed(raw)
    message: Message = parser.close()
    return message
