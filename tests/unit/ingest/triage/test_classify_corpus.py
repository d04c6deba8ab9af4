"""Every message of the shared developer corpus is classified as its labels say."""

from __future__ import annotations

import csv
import email
import email.policy
import email.utils
import hashlib
import importlib
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from ingest.errors import ParseError
from ingest.mime.parsed import Address, ParsedMail
from ingest.triage.classify import ClassifySettings, Kind, classify
from tests.support.services import SHARED

CORPUS = SHARED / "corpus"
LABELS = CORPUS / "labels.csv"
SETTINGS = ClassifySettings(
    own_addresses=frozenset({"support@mail2case.example.com"}),
    own_domains_message_id=frozenset({"mail2case.example.com"}),
    agent_addresses=frozenset(),
    agent_domains=frozenset(),
)


def _rows() -> list[dict[str, str]]:
    if not LABELS.exists():
        return []
    with LABELS.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _stdlib_parse(raw: bytes) -> ParsedMail:
    """Stand-in until ingest.mime.parse lands: the fields classify reads, via the stdlib."""
    tree = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(tree, EmailMessage)
    headers = tuple((k, str(v)) for k, v in tree.raw_items())
    pairs = email.utils.getaddresses([str(v) for k, v in headers if k.lower() == "from"])
    body = tree.get_body(preferencelist=("plain",))
    try:
        text = body.get_content() if isinstance(body, EmailMessage) else ""
    except (LookupError, UnicodeError):
        text = ""
    return ParsedMail(
        message_id=None,
        in_reply_to=(),
        references=(),
        from_=Address(*pairs[0]) if pairs and pairs[0][1] else None,
        reply_to=(),
        to=(),
        cc=(),
        subject=next((v for k, v in headers if k.lower() == "subject"), ""),
        date=None,
        text=text,
        html=None,
        attachments=(),
        headers=headers,
        content_type=tree.get_content_type(),
        content_key=hashlib.sha256(raw).hexdigest(),
        tree=tree,
    )


def _parser() -> Callable[[bytes], ParsedMail]:
    try:
        module = importlib.import_module("ingest.mime.parse")
    except ModuleNotFoundError:
        return _stdlib_parse
    parse: Callable[[bytes], ParsedMail] = module.parse_message
    return parse


ROWS = _rows()


@pytest.mark.skipif(not ROWS, reason=f"no corpus labels at {LABELS}")
@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_corpus_labels_are_met(row: dict[str, str]) -> None:
    """Labelled auto-replies and bounces are recognised; labelled non-ones are not."""
    raw = (CORPUS / row["file"]).read_bytes()
    try:
        mail = _parser()(raw)
    except ParseError:
        assert row["category"] == "malformed", f"{row['file']} failed to parse"
        return
    kind = classify(mail, SETTINGS).kind
    expectations = {
        ("is_autoreply", "1"): kind is Kind.AUTO_REPLY,
        ("is_autoreply", "0"): kind is not Kind.AUTO_REPLY,
        ("is_bounce", "1"): kind is Kind.BOUNCE,
        ("is_bounce", "0"): kind is not Kind.BOUNCE,
    }
    for column in ("is_autoreply", "is_bounce"):
        assert expectations.get((column, row[column]), True), f"{column}={row[column]}: {kind}"
