"""The mbox reader splits a file into the messages ``mailbox.mbox`` gives, byte for byte."""

from __future__ import annotations

import mailbox
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.mix import generate
from ingest.history.archive_source import mbox_spans, read_path
from tests.support.corpus import messages

# Lines that decide where messages begin and end, and lines that only look as if they do.
LINES = [
    b"From alice@example.com Mon Jan  1 00:00:00 2024\n",
    b"From \n",
    b"From",
    b"\n",
    b"\r\n",
    b"text\n",
    b">From quoted\n",
    b" From indented\n",
    b"From:header@example.com\n",
    b"tail without a newline",
]


def stock(data: bytes) -> list[bytes]:
    """What the standard library's mbox gives for a file holding ``data``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "box"
        path.write_bytes(data)
        box = mailbox.mbox(path, create=False)
        try:
            return [box.get_bytes(key) for key in box.iterkeys()]
        finally:
            box.close()


def ours(data: bytes) -> list[bytes]:
    """What ``mbox_spans`` cuts from ``data``."""
    return [data[start:stop] for start, stop in mbox_spans(data)]


@settings(max_examples=400)
@given(st.lists(st.sampled_from(LINES), max_size=14))
def test_any_file_of_separator_like_lines_is_split_as_the_stdlib_splits_it(
    lines: list[bytes],
) -> None:
    """Blank lines before separators and at the end, lines before the first, no final newline."""
    data = b"".join(lines)
    assert ours(data) == stock(data)


@given(st.binary(max_size=60))
def test_any_bytes_after_a_separator_are_split_as_the_stdlib_splits_them(tail: bytes) -> None:
    """Arbitrary bytes, CR and NUL included, after a first ``From `` line."""
    data = b"From x\n" + tail.replace(b"F", b"\nFrom ")
    assert ours(data) == stock(data)


def test_an_mbox_written_by_the_stdlib_reads_back_the_same(tmp_path: Path) -> None:
    """The bench mix and the corpus, written by ``mailbox.mbox.add`` (which quotes From lines)."""
    raws = generate(60) + [m.raw() for m in messages()]
    path = tmp_path / "history.mbox"
    box = mailbox.mbox(path, create=True)
    for raw in raws:
        box.add(raw)
    box.flush()
    box.close()
    read = [m.raw for m in read_path(path)]
    assert read == stock(path.read_bytes())
    assert len(read) == len(raws)


def test_no_bytes_hold_no_messages() -> None:
    """Nothing to split."""
    assert ours(b"") == stock(b"") == []
