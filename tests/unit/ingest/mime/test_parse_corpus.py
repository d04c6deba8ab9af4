"""parse_message over the corpora (ours, the shared one when present): no crash, sane charsets."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from ingest.errors import ParseError
from ingest.mime.parse import parse_message
from tests.support.corpus import SHARED_CORPUS, CorpusMessage, labelled, messages

if TYPE_CHECKING:
    from collections.abc import Callable

FILES = messages()
CHARSET_FILES = messages(category="charsets")
WITH_TEXT = [m for m in labelled() if m.label("expected_text")]


def corpus_id(message: CorpusMessage) -> str:
    """The corpus and the file's path in it, as the test id."""
    return message.id


@pytest.mark.parametrize("message", FILES, ids=corpus_id)
def test_corpus_message_parses_or_raises_parse_error(message: CorpusMessage) -> None:
    """Every corpus message parses, or is refused with ParseError and a reason."""
    try:
        parsed = parse_message(message.raw())
    except ParseError as error:
        reason = error.reason
    else:
        assert len(parsed.content_key) == 64
        assert parsed.tree is not None
        return
    assert reason


@pytest.mark.parametrize("message", CHARSET_FILES, ids=corpus_id)
def test_clean_charsets_decode_without_replacement_characters(message: CorpusMessage) -> None:
    """Body text has no U+FFFD unless a charset that did not fit the bytes was noted."""
    parsed = parse_message(message.raw())
    noted = any("charset" in defect for defect in parsed.defects)
    assert noted or "\ufffd" not in parsed.text


@pytest.mark.skipif(not SHARED_CORPUS.root.is_dir(), reason="shared corpus not present")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("redmine__test_fixtures_mail_handler_body_ks_c_5601-1987.eml", "고맙습니다"),
        ("redmine__test_fixtures_mail_handler_gmail-iso8859-2.eml", "Na štriku se suši šosić"),
        ("rt__t_data_emails_8859-15-message-series_msg1.eml", "äöüß"),
        ("freescout__tests_Messages_message-5-iso-2022-jp.eml", "アマゾン"),
        ("django-helpdesk__tests_test_files_all-special-chars.eml", "íářčšáíéřášč"),
        ("mail-mime-parser__tests__data_emails_m1001.eml", "Die Hasen und die Frösche"),
        ("mail-parser__resources_eml_thirdparty_019.eml", "hähä"),
    ],
)
def test_declared_charsets_decode_to_expected_text(name: str, expected: str) -> None:
    """Messages in legacy charsets (EUC-KR, ISO-2022-JP, Latin-2, ...) decode correctly."""
    parsed = parse_message((SHARED_CORPUS.root / "charsets" / name).read_bytes())
    assert expected in parsed.text
    assert not [d for d in parsed.defects if "charset" in d]


@pytest.mark.parametrize("message", WITH_TEXT, ids=corpus_id)
def test_labelled_text_is_decoded(message: CorpusMessage) -> None:
    """A message's labelled expected_text (in its charset, HTML or MIME part) is in its text."""
    parsed = parse_message(message.raw())
    assert message.label("expected_text") in parsed.text
    assert not [d for d in parsed.defects if "charset" in d]


def test_corpus_parse_time_is_recorded(record_property: Callable[[str, object], None]) -> None:
    """The whole corpus is parsed once and the elapsed time is recorded (not asserted)."""
    started = time.perf_counter()
    outcomes = {"parsed": 0, "refused": 0}
    for message in FILES:
        try:
            parse_message(message.raw())
        except ParseError:
            outcomes["refused"] += 1
        else:
            outcomes["parsed"] += 1
    record_property("corpus_parse_seconds", round(time.perf_counter() - started, 3))
    record_property("corpus_outcomes", outcomes)
    assert sum(outcomes.values()) == len(FILES)
