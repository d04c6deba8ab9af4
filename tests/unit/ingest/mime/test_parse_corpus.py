"""parse_message over the shared corpus of real-world messages: no crash, sane charsets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest.errors import ParseError
from ingest.mime.parse import parse_message
from tests.support.services import SHARED

if TYPE_CHECKING:
    from collections.abc import Callable

CORPUS = SHARED / "corpus"

if not CORPUS.is_dir():
    pytest.skip(f"corpus not found at {CORPUS}", allow_module_level=True)

FILES = sorted(CORPUS.rglob("*.eml"))
CHARSET_FILES = sorted((CORPUS / "charsets").glob("*.eml"))


def corpus_id(path: Path) -> str:
    """The file's path relative to the corpus, as the test id."""
    return path.relative_to(CORPUS).as_posix()


@pytest.mark.parametrize("path", FILES, ids=corpus_id)
def test_corpus_message_parses_or_raises_parse_error(path: Path) -> None:
    """Every corpus message parses, or is refused with ParseError and a reason."""
    try:
        parsed = parse_message(path.read_bytes())
    except ParseError as error:
        reason = error.reason
    else:
        assert len(parsed.content_key) == 64
        assert parsed.tree is not None
        return
    assert reason


@pytest.mark.parametrize("path", CHARSET_FILES, ids=corpus_id)
def test_clean_charsets_decode_without_replacement_characters(path: Path) -> None:
    """Body text has no U+FFFD unless a charset that did not fit the bytes was noted."""
    parsed = parse_message(path.read_bytes())
    noted = any("charset" in defect for defect in parsed.defects)
    assert noted or "\ufffd" not in parsed.text


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
    parsed = parse_message((CORPUS / "charsets" / name).read_bytes())
    assert expected in parsed.text
    assert not [d for d in parsed.defects if "charset" in d]


def test_corpus_parse_time_is_recorded(record_property: Callable[[str, object], None]) -> None:
    """The whole corpus is parsed once and the elapsed time is recorded (not asserted)."""
    started = time.perf_counter()
    outcomes = {"parsed": 0, "refused": 0}
    for path in FILES:
        try:
            parse_message(path.read_bytes())
        except ParseError:
            outcomes["refused"] += 1
        else:
            outcomes["parsed"] += 1
    record_property("corpus_parse_seconds", round(time.perf_counter() - started, 3))
    record_property("corpus_outcomes", outcomes)
    assert sum(outcomes.values()) == len(FILES)
