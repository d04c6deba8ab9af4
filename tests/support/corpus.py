"""The message corpora: ours (``tests/corpus``, always) and ../shared's (when present).

Each corpus is a folder of ``.eml`` files by category with a ``labels.csv`` (see
``tests/corpus/SOURCES.md`` for the columns). The repository's large messages are
generated here at test time rather than committed.
"""

from __future__ import annotations

import base64
import csv
import functools
import random
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.support.services import REPO, SHARED

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

_SUPPORT = "support@mail2case.example.com"


@dataclass(frozen=True, slots=True)
class Corpus:
    """A folder of messages; ``name`` (``repo`` or ``shared``) prefixes the test ids."""

    name: str
    root: Path

    @property
    def labels_path(self) -> Path:
        """The corpus's ``labels.csv``."""
        return self.root / "labels.csv"


@dataclass(frozen=True, slots=True)
class CorpusMessage:
    """One message of a corpus, with its labels row (empty when it has none)."""

    corpus: str
    name: str
    labels: Mapping[str, str]
    path: Path | None  # None: generated at test time

    @property
    def id(self) -> str:
        """``corpus:category/file.eml``, the test id."""
        return f"{self.corpus}:{self.name}"

    @property
    def category(self) -> str:
        """The folder the message is in."""
        return self.name.partition("/")[0]

    def label(self, column: str) -> str:
        """A labels.csv column, '' when unlabelled or the corpus has no such column."""
        return self.labels.get(column) or ""

    def raw(self) -> bytes:
        """The message's bytes."""
        if self.path is not None:
            return self.path.read_bytes()
        return GENERATED[self.name]()


OUR_CORPUS = Corpus("repo", REPO / "tests" / "corpus")
SHARED_CORPUS = Corpus("shared", SHARED / "corpus")


def corpora() -> tuple[Corpus, ...]:
    """The repository's corpus, and the shared one when it is present."""
    if SHARED_CORPUS.root.is_dir():
        return (OUR_CORPUS, SHARED_CORPUS)
    return (OUR_CORPUS,)


def messages(category: str | None = None) -> list[CorpusMessage]:
    """Every message of every present corpus (optionally of one category), in a stable order."""
    found = [m for corpus in corpora() for m in in_corpus(corpus)]
    return [m for m in found if category is None or m.category == category]


def labelled() -> list[CorpusMessage]:
    """The messages that have a labels.csv row, in labels order."""
    found: list[CorpusMessage] = []
    for corpus in corpora():
        by_name = {m.name: m for m in in_corpus(corpus)}
        rows = label_rows(corpus)
        found += [by_name.get(row["file"]) or _message(corpus, row["file"], row) for row in rows]
    return found


def label_rows(corpus: Corpus) -> list[dict[str, str]]:
    """The rows of a corpus's labels.csv (none when it has no labels)."""
    if not corpus.labels_path.exists():
        return []
    with corpus.labels_path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def importable_dir(corpus: Corpus, scratch: Path) -> Path:
    """A folder to import the corpus from: the shared one in place, ours written out.

    Ours holds generated messages and non-message files (SOURCES.md, labels.csv), so
    its messages are copied, and generated ones written, under ``scratch``.
    """
    if corpus.name != OUR_CORPUS.name:
        return corpus.root
    for message in in_corpus(corpus):
        target = scratch / message.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if message.path is None:
            target.write_bytes(message.raw())
        else:
            shutil.copyfile(message.path, target)
    return scratch


@functools.cache
def in_corpus(corpus: Corpus) -> tuple[CorpusMessage, ...]:
    """The messages of one corpus: its .eml files (and, for ours, the generated ones)."""
    rows = {row["file"]: row for row in label_rows(corpus)}
    names = [p.relative_to(corpus.root).as_posix() for p in corpus.root.rglob("*.eml")]
    if corpus.name == OUR_CORPUS.name:
        names += list(GENERATED)
    return tuple(_message(corpus, name, rows.get(name, {})) for name in sorted(names))


def _message(corpus: Corpus, name: str, labels: Mapping[str, str]) -> CorpusMessage:
    generated = corpus.name == OUR_CORPUS.name and name in GENERATED
    return CorpusMessage(corpus.name, name, labels, None if generated else corpus.root / name)


# --- large messages, generated (deterministic) rather than committed ------------------


def _head(subject: str, content_type: str, extra: str = "") -> bytes:
    local = subject.lower().replace(" ", "-")
    return (
        f"From: Dana White <dana@customer.example>\nTo: {_SUPPORT}\nSubject: {subject}\n"
        f"Date: Thu, 26 Mar 2026 09:00:00 +0000\nMessage-ID: <{local}.large@customer.example>\n"
        f"{extra}MIME-Version: 1.0\nContent-Type: {content_type}\n\n"
    ).encode()


@functools.cache
def _large_attachment() -> bytes:
    """A 1.5 MB binary attachment (base64, about 2 MB of message)."""
    data = random.Random(20260326).randbytes(1_500_000)
    text = b"Content-Type: text/plain; charset=us-ascii\n\nThe full database dump is attached.\n"
    attachment = (
        b'Content-Type: application/octet-stream; name="dump.bin"\n'
        b'Content-Disposition: attachment; filename="dump.bin"\n'
        b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(data)
    )
    body = b"--L1\n" + text + b"--L1\n" + attachment + b"--L1--\n"
    return _head("Database dump", 'multipart/mixed; boundary="L1"') + body


@functools.cache
def _large_log_body() -> bytes:
    """A 600 kB application log pasted into a plain-text body."""
    rng = random.Random(7)
    levels = ("INFO", "INFO", "INFO", "WARN", "ERROR")
    lines = [
        f"2026-03-26T08:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 10}00Z {rng.choice(levels):5} "
        f"worker-{rng.randrange(16):02d} job={rng.randrange(10**6):06d} step={rng.randrange(40)} "
        "processing batch of records"
        for i in range(6_500)
    ]
    body = "The import fails every night. The whole log is below.\n\n" + "\n".join(lines) + "\n"
    return _head("Nightly import log", "text/plain; charset=us-ascii") + body.encode()


@functools.cache
def _large_html_newsletter() -> bytes:
    """A 500 kB HTML newsletter with a long table (a list post)."""
    rows = "".join(
        f"<tr><td>Release {i // 100}.{i % 100}</td><td>Fixed issue #{10_000 + i}</td>"
        f'<td><a href="https://saas.example/changelog/{i}">details</a></td></tr>\n'
        for i in range(5_000)
    )
    html = f"<html><body><h1>Changelog digest</h1><table>{rows}</table></body></html>\n"
    extra = "List-Unsubscribe: <https://saas.example/unsubscribe?u=9>\nPrecedence: bulk\n"
    return _head("Changelog digest", "text/html; charset=utf-8", extra) + html.encode()


@functools.cache
def _many_parts() -> bytes:
    """400 small attachments in one multipart/mixed (about 450 kB)."""
    parts = [b"--P\nContent-Type: text/plain\n\nOne CSV per store, 400 stores.\n"]
    parts += [
        f'--P\nContent-Type: text/csv; name="store-{i:03d}.csv"\n'
        f'Content-Disposition: attachment; filename="store-{i:03d}.csv"\n\n'.encode()
        + b"sku,qty\n"
        + b"".join(f"{i:03d}-{j:04d},{j % 17}\n".encode() for j in range(90))
        for i in range(400)
    ]
    return _head("Stock levels", 'multipart/mixed; boundary="P"') + b"".join(parts) + b"--P--\n"


GENERATED: dict[str, Callable[[], bytes]] = {
    "large/generated-attachment-1500k.eml": _large_attachment,
    "large/generated-html-newsletter-500k.eml": _large_html_newsletter,
    "large/generated-log-body-600k.eml": _large_log_body,
    "large/generated-many-parts-400.eml": _many_parts,
}
