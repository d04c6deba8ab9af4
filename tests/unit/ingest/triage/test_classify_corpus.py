"""Every labelled message of the corpora (ours, the shared one when present) is classified so."""

from __future__ import annotations

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
from tests.support.corpus import GENERATED, OUR_CORPUS, CorpusMessage, label_rows, labelled

SETTINGS = ClassifySettings(
    own_addresses=frozenset({"support@mail2case.example.com"}),
    own_domains_message_id=frozenset({"mail2case.example.com"}),
    agent_addresses=frozenset(),
    agent_domains=frozenset(),
)


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


def _params() -> list[pytest.ParameterSet]:
    """One case per labelled message; a known classifier mistake is a strict xfail, with why."""
    cases = []
    for message in labelled():
        known_wrong = message.label("known_wrong")
        marks = [pytest.mark.xfail(strict=True, reason=known_wrong)] if known_wrong else []
        cases.append(pytest.param(message, id=message.id, marks=marks))
    return cases


@pytest.mark.parametrize("message", _params())
def test_corpus_labels_are_met(message: CorpusMessage) -> None:
    """Labelled auto-replies and bounces are recognised; labelled non-ones are not."""
    try:
        mail = _parser()(message.raw())
    except ParseError:
        assert message.category == "malformed", f"{message.name} failed to parse"
        return
    kind = classify(mail, SETTINGS).kind
    expectations = {
        ("is_autoreply", "1"): kind is Kind.AUTO_REPLY,
        ("is_autoreply", "0"): kind is not Kind.AUTO_REPLY,
        ("is_bounce", "1"): kind is Kind.BOUNCE,
        ("is_bounce", "0"): kind is not Kind.BOUNCE,
    }
    for column in ("is_autoreply", "is_bounce"):
        value = message.label(column)
        assert expectations.get((column, value), True), f"{column}={value}: {kind}"
    # Only our corpus labels the kind itself (the shared labels.csv has no such column).
    assert message.label("kind") in {"", kind.value}, f"kind={message.label('kind')}: {kind}"


def test_our_corpus_is_labelled_and_sourced() -> None:
    """Each message of our corpus has a labels row and a SOURCES.md entry; each row, a message."""
    root = OUR_CORPUS.root
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.eml")}
    rows = [row["file"] for row in label_rows(OUR_CORPUS)]
    assert sorted(rows) == sorted(on_disk | set(GENERATED))
    sources = (root / "SOURCES.md").read_text(encoding="utf-8")
    assert [name for name in rows if f"`{name}`" not in sources] == []
    kinds = {row["kind"] for row in label_rows(OUR_CORPUS)}
    assert kinds <= {"", *(kind.value for kind in Kind)}
