"""The trimmed feed parser builds the standard library's tree, and leaves the stdlib alone."""

from __future__ import annotations

import email.feedparser
import re
from email.message import Message
from email.parser import BytesParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.mix import generate
from ingest.mime.feed import END_OF_LINE, is_trimmed, parse_bytes
from ingest.mime.policy import POLICY
from tests.support.corpus import CorpusMessage, messages

STOCK_END_OF_LINE = re.compile(r"(\r\n|\r|\n)\Z")


@given(st.text(alphabet="\r\nab-", max_size=12))
def test_the_end_search_finds_what_the_stock_search_finds(text: str) -> None:
    """Same span and text, or no match for both, on any string of line-break soup."""
    ours, stock = END_OF_LINE.search(text), STOCK_END_OF_LINE.search(text)
    assert (ours and (ours.span(), ours.group(0))) == (stock and (stock.span(), stock.group(0)))


def test_this_python_gets_the_trimmed_parser_and_the_shared_one_is_untouched() -> None:
    """On the supported Pythons the fix is in force, in the private copy only."""
    assert is_trimmed()
    shared = email.feedparser.NLCRE_eol  # type: ignore[attr-defined]
    assert shared.pattern == STOCK_END_OF_LINE.pattern


def _shape(msg: Message) -> list[tuple[object, ...]]:
    """Each part's defects, preamble and epilogue, in walk order (as_bytes has the rest)."""
    return [
        (tuple(type(d).__name__ for d in part.defects), part.preamble, part.epilogue)
        for part in msg.walk()
    ]


def _same_tree(raw: bytes) -> None:
    try:
        stock = BytesParser(policy=POLICY).parsebytes(raw)
    except RecursionError:
        with pytest.raises(RecursionError):
            parse_bytes(raw, POLICY)
        return
    ours = parse_bytes(raw, POLICY)
    assert ours.as_bytes() == stock.as_bytes()
    assert _shape(ours) == _shape(stock)


@pytest.mark.parametrize("message", messages(), ids=lambda m: m.id)
def test_every_corpus_message_gets_the_stock_tree(message: CorpusMessage) -> None:
    """Ours and, when present, the shared corpus: the same bytes, defects and framing."""
    _same_tree(message.raw())


def test_the_bench_mix_gets_the_stock_tree() -> None:
    """Mail with large attachments, where the trimmed scan matters most."""
    for raw in generate(60, seed=7):
        _same_tree(raw)


@given(
    st.lists(
        st.sampled_from(
            [
                "--b\r\n",
                "--b--\r\n",
                "--b--",
                "\r\n",
                "\n",
                "\r",
                "x\r\n",
                "Content-Type: text/plain\n",
            ]
        ),
        max_size=12,
    )
)
def test_hostile_part_endings_get_the_stock_tree(pieces: list[str]) -> None:
    """Boundaries and stray CR/LF in any order end parts as the stock parser ends them."""
    head = 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    _same_tree((head + "".join(pieces)).encode())
