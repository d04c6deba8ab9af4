"""Feature detection finds exactly what the whole-text prefilter and a full search find.

The detector skips patterns by their literal factors per text, and per sentence where
lower-casing provably agrees with the regex engine; these tests compare it with the
plain reading it replaced: every pattern that passes the whole-text prefilter searched
in every sentence.
"""

# ruff: noqa: RUF001, RUF002 - the look-alike characters are the point of these tests
from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.priority.features import (
    INCIDENT_FEATURES,
    Evidence,
    Hit,
    LazyPattern,
    _longest_first,
    detect,
)
from ingest.priority.inference import PriorityRules, _match_claim
from ingest.priority.literal_factors import folds_plainly, is_plain, may_match, required_factors
from ingest.priority.text import new_text, sentences
from tests.support.services import REPO, SHARED

RULES = PriorityRules.default()
WIDTH = RULES.quote_chars


def plain_reading(parts: list[str]) -> Evidence:
    """Every pattern that passes the prefilter searched in every sentence: the meaning kept."""
    lowered = "\n".join(parts).lower()
    features = {
        name: [p for p in patterns if may_match(p, lowered)]
        for name, patterns in RULES.features.items()
    }
    found: dict[str, list[Hit]] = {name: [] for name in features}
    for index, sentence in enumerate(parts):
        hypothetical = any(p.search(sentence) for p in features["hypothetical"])
        for name, patterns in features.items():
            if hypothetical and name in INCIDENT_FEATURES:
                continue
            match = next((m for p in patterns if (m := p.search(sentence))), None)
            if match is not None:
                quote = sentence
                if len(sentence) > WIDTH:
                    start = max(0, min(match.start() - WIDTH // 3, len(sentence) - WIDTH))
                    quote = ("…" if start else "") + sentence[start : start + WIDTH].strip() + "…"
                found[name].append(Hit(index, quote))
    return Evidence({name: tuple(hits) for name, hits in found.items()})


def labelled_mails() -> list[list[str]]:
    """The subject and sentences of every labelled example at hand."""
    files = [
        SHARED / "priority" / "examples.jsonl",
        *sorted((REPO / "ingest" / "priority" / "data").glob("earlier-*.jsonl")),
    ]
    rows = [
        json.loads(line)
        for f in files
        if f.exists()
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return [[row["subject"], *sentences(new_text(row["body"]))] for row in rows]


def test_same_evidence_on_labelled_mail() -> None:
    """On every labelled example the detector agrees with the plain reading."""
    mails = labelled_mails()
    if not mails:
        pytest.skip("no labelled examples at hand")
    for parts in mails:
        assert detect(parts, RULES.features, WIDTH) == plain_reading(parts)


def rule_words() -> list[str]:
    """Words the rules look for, in several casings, so generated text often matches."""
    words = {
        w
        for patterns in RULES.features.values()
        for p in patterns
        for w in (required_factors(p.pattern) or ())
    }
    return sorted({v for w in words for v in (w, w.upper(), w.title())})


# Characters on which lower-casing and the engine's case folding disagree, and others.
ODD = ["ſ", "ı", "İ", "Σ", "ς", "K", "ß", "é", "’", "–", "\u00a0", "ǅ", "ﬅ", "в"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(rule_words()),
            st.sampled_from(ODD),
            st.sampled_from([" ", ". ", ", ", "? ", "-", "", "7 ", "\n"]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(min_value=1, max_value=6),
)
def test_same_evidence_on_rule_words(pieces: list[str], cuts: int) -> None:
    """Text made of the rules' words and odd characters: the same evidence as the plain reading."""
    text = "".join(pieces)
    step = max(1, len(text) // cuts)
    parts = [text[i : i + step] for i in range(0, len(text), step)]
    assert detect(parts, RULES.features, WIDTH) == plain_reading(parts)


@given(st.lists(st.text(max_size=80), min_size=1, max_size=5))
def test_same_evidence_on_any_text(parts: list[str]) -> None:
    """Any text at all: the same evidence as the plain reading."""
    assert detect(parts, RULES.features, WIDTH) == plain_reading(parts)


def test_long_s_is_not_plain() -> None:
    """A text with a character the engine folds otherwise is not plain; 'Straße' is."""
    assert not is_plain("Serverſ down")
    assert not is_plain("İstanbul")
    assert is_plain("Grüße – “Straße”")
    assert not folds_plainly("ſerver")
    assert folds_plainly(r"\bproduktion\b")


def test_long_s_matches_where_lowering_misses() -> None:
    """'ſ' matches 's' in the engine but lowers to itself: the detector still finds it."""
    parts = ["The ſerver is down ſince this morning, the outage affects everyone."]
    assert detect(parts, RULES.features, WIDTH) == plain_reading(parts)
    assert detect(parts, RULES.features, WIDTH).has("outage")


CLAIM_WORDS = [
    "priority",
    "Priority: high",
    "prio=2",
    "severity 1",
    "top priority",
    "this is critical",
    "low prio",
    "mark it as normal",
    "P1",
    "[urgent]",
    "Priorität: hoch",
    "PRIORITÉ : basse",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(CLAIM_WORDS),
            st.sampled_from(ODD),
            st.sampled_from([" ", ". ", "\n", "", ": ", "="]),
        ),
        max_size=30,
    )
)
def test_claim_prefilter_changes_nothing(pieces: list[str]) -> None:
    """Statements found with the whole-text prefilter are those found without it."""
    text = "".join(pieces)
    lowered = text.lower() if is_plain(text) else None
    assert _match_claim(text, RULES, "statement_", lowered) == _match_claim(
        text, RULES, "statement_"
    )


@given(
    st.lists(st.text(alphabet="abc .?\n", min_size=1, max_size=5), min_size=1, max_size=12),
    st.text(alphabet="abcd .?\n", max_size=60),
)
def test_longest_first_finds_every_word(words: list[str], text: str) -> None:
    """The trie pattern, tried at every place, yields exactly the words in the text."""
    finder = _longest_first(words)
    starts = {m.start() for m in (finder.match(text, at) for at in range(len(text))) if m}
    found = {
        prefix
        for at in starts
        if (m := finder.match(text, at))
        for prefix in words
        if m.group().startswith(prefix)
    }
    assert found == {w for w in words if w in text}


def test_a_lazy_pattern_searches_as_its_compiled_self() -> None:
    """Case-insensitive like the rules' patterns; compiled once, at its first search."""
    lazy = LazyPattern(r"\bserver (is )?down\b")
    assert lazy._compiled is None
    found = lazy.search("Our SERVER is Down since 9")
    assert found is not None
    assert found.group(0) == "SERVER is Down"
    compiled = lazy._compiled
    assert lazy.search("server down") is not None
    assert lazy._compiled is compiled
    assert lazy.search("the service is up") is None


def test_a_lazy_pattern_pickles_as_its_source() -> None:
    """A worker gets the source, whether or not the sender had compiled it."""
    lazy = LazyPattern(r"\boutage\b")
    lazy.search("an outage")
    copy = pickle.loads(pickle.dumps(lazy))  # noqa: S301 - our own pickle
    assert copy == lazy
    assert copy._compiled is None
    assert hash(copy) == hash(lazy)
