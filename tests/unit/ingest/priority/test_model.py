"""The pure priority model: scikit-learn's analyzers reproduced, its file format, its evidence."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from ingest.priority.function_words import is_evidence
from ingest.priority.model import PriorityModel, model_text
from ingest.priority.model_blocks import char_wb_ngrams, word_ngrams
from sla.policy import Priority
from tests.support.priority_model import block, document
from tests.support.services import REPO

TEXTS = [
    "Production is DOWN for all users!!",
    "a b cd  é ü ß İstanbul ﬁle naïve\tword\n\nnext",
    "x",
    "",
    "   ",
    "Hi,\n\nWie exportiere ich die Daten?   Danke — und 3 Fragen: a/b_c d-e.",
    "日本語のテキスト mixed with English and ½ numbers 123 4567",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("ngram_range", [(2, 5), (1, 3), (3, 3), (1, 1)])
def test_char_wb_ngrams_are_scikit_learns(text: str, ngram_range: tuple[int, int]) -> None:
    """Per word, the char_wb n-grams are scikit-learn's, short words and odd spaces included."""
    theirs = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range).build_analyzer()
    ours = [g for word in text.lower().split() for g in char_wb_ngrams(word, ngram_range)]
    assert ours == theirs(text)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("ngram_range", [(1, 2), (1, 1), (2, 3)])
def test_word_ngrams_are_scikit_learns(text: str, ngram_range: tuple[int, int]) -> None:
    """Word n-grams over scikit-learn's default tokens are scikit-learn's."""
    vectorizer = TfidfVectorizer(ngram_range=ngram_range)
    tokens = vectorizer.build_tokenizer()(text.lower())
    assert word_ngrams(tokens, ngram_range) == vectorizer.build_analyzer()(text)


TINY = PriorityModel.from_document(document())


def test_prediction_names_class_confidence_runner_up_and_terms() -> None:
    """The class with the highest value wins; its probability and best terms come with it."""
    prediction = TINY.predict("Outage", "The outage hits all users. How long?")
    assert prediction.priority is Priority.HIGH
    assert 0.5 < prediction.confidence < 1
    assert prediction.runner_up is not Priority.HIGH
    assert prediction.margin > 0
    assert prediction.terms[:2] == ("outage", "all users")
    assert "the" not in prediction.terms  # a term that pushed nothing is no evidence


def test_char_ngram_evidence_is_shown_as_the_word_it_came_from() -> None:
    """A char n-gram's push is credited to its word, stripped of punctuation."""
    prediction = TINY.predict("", "Crash!")
    assert prediction.priority is Priority.HIGH
    assert prediction.terms == ("crash",)


def test_function_words_and_numbers_are_never_shown_as_evidence() -> None:
    """'the', 'und', '2024' push like any term but a reason names only words that say something."""
    doc = document()
    doc["blocks"][0] = block(
        "word",
        {
            "the": (5.0, 0.0, 0.0),
            "und": (4.0, 0.0, 0.0),
            "2024": (3.0, 0.0, 0.0),
            "the outage": (1.0, 0.0, 0.0),
        },
    )
    prediction = PriorityModel.from_document(doc).predict("", "The outage und 2024")
    assert prediction.priority is Priority.HIGH
    assert prediction.terms == ("the outage",)
    assert not is_evidence("the und")
    assert not is_evidence("2024")
    assert is_evidence("all users")


def test_text_without_known_terms_gets_the_intercepts() -> None:
    """No known n-gram leaves the row at zero: the intercepts alone decide (Medium here)."""
    assert TINY.decision_values("zzz qqq") == (0.0, 0.0, 0.5)
    assert TINY.predict("", "zzz").priority is Priority.MEDIUM


def test_probabilities_are_the_softmax_of_the_decision_values() -> None:
    """Probabilities sum to one and rank the classes as the decision values do."""
    values = TINY.decision_values("how slow")
    probabilities = TINY.probabilities("how slow")
    assert sum(probabilities) == pytest.approx(1.0)
    assert sorted(range(3), key=values.__getitem__) == sorted(
        range(3), key=probabilities.__getitem__
    )


def test_model_reads_the_new_text_only() -> None:
    """Quoted history and the signature do not vote: only the subject and new text are read."""
    body = "How do I export?\n\nOn Mon, Ann wrote:\n> outage outage outage for all users\n"
    assert model_text("Re: question", body) == "question\nHow do I export?"
    assert TINY.predict("Re: question", body).priority is Priority.LOW


def test_file_round_trips_byte_for_byte() -> None:
    """A model written and read back is the same model, and writes the same bytes."""
    data = TINY.to_bytes()
    again = PriorityModel.from_bytes(data)
    assert again.to_bytes() == data
    assert again.to_document() == TINY.to_document()
    assert PriorityModel.from_bytes(gzip.decompress(data)).to_document() == TINY.to_document()


def test_file_is_plain_json_in_gzip() -> None:
    """The model file is gzip-compressed JSON: nothing in it is executed on load."""
    decoded = json.loads(gzip.decompress(TINY.to_bytes()))
    assert decoded["format"] == "mail2case-priority-model"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x80\x04\x95pickle", "not JSON"),
        (b"\x1f\x8b broken gzip", "not a gzip file"),
        (json.dumps({"format": "other"}).encode(), "not a mail2case-priority-model"),
        (json.dumps(document(version=2)).encode(), "version 2"),
        (json.dumps(document(classes=["high", "low"])).encode(), "do not agree"),
        (json.dumps(document(classes=["high", "low", "urgent"])).encode(), "malformed"),
        (json.dumps(document(blocks=[{"analyzer": "char"}])).encode(), "analyzer"),
    ],
)
def test_bad_files_are_refused_with_the_reason(data: bytes, problem: str) -> None:
    """A file that is not a model of this format raises ValueError saying why."""
    with pytest.raises(ValueError, match=problem):
        PriorityModel.from_bytes(data)


def test_block_lengths_must_agree() -> None:
    """A vocabulary longer than its idf or coefficients is refused."""
    bad = document()
    bad["blocks"][0]["idf"] = [1.0]
    with pytest.raises(ValueError, match="do not agree"):
        PriorityModel.from_document(bad)


def test_shipped_model_loads_and_decides_plain_cases() -> None:
    """The shipped model reads a production outage as High and a how-to question as Low."""
    model = PriorityModel.shipped()
    assert set(model.classes) == set(Priority)
    outage = model.predict(
        "Production down", "Since 9:00 nobody can log in to production. No workaround."
    )
    assert outage.priority is Priority.HIGH
    question = model.predict("Question", "How do I export a report to CSV? Thanks.")
    assert question.priority is Priority.LOW


def test_inference_imports_no_scikit_learn() -> None:
    """The daemon's path (model, decision) loads neither scikit-learn, NumPy nor SciPy."""
    code = (
        "import sys; import ingest.priority.decision, ingest.priority.model;"
        "ingest.priority.model.PriorityModel.shipped();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'sklearn','numpy','scipy'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, check=True, timeout=60
    )
    assert out.stdout.decode().strip() == "[]"
