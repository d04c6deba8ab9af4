"""The literal prefilter never rules out a pattern that would have matched."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.priority.inference import PriorityRules
from ingest.priority.literal_factors import may_match, required_factors
from tests.support.services import REPO, SHARED


@pytest.mark.parametrize(
    ("pattern", "factors"),
    [
        (r"\bsandbox(es)?\b", {"sandbox"}),
        (r"\b(all|every|everyone)\b(?!\s+other)", {"all", "every", "everyone"}),
        (r"\d+\s*(x|times)\s*slower", {"slower"}),
        (r"\bHTTP 5\d\d\b", {"http 5"}),
        (r"\?\s*$", None),
        (r"\bp1\b", None),
        (r"(ab|c)", None),
        (r"(?:server)?error", {"error"}),
    ],
)
def test_factors_of_patterns(pattern: str, factors: set[str] | None) -> None:
    """Literal runs, groups, alternations and repeats give factors; optional parts do not."""
    found = required_factors(pattern)
    assert (None if found is None else set(found)) == factors


def all_patterns() -> list[re.Pattern[str]]:
    """Every pattern of the default priority rules, compiled."""
    rules = PriorityRules.default()
    return [
        re.compile(p, re.IGNORECASE) for sources in rules.feature_sources.values() for p in sources
    ]


def texts() -> list[str]:
    """Subjects and bodies of every labelled priority example at hand."""
    files = [
        SHARED / "priority" / "examples.jsonl",
        *sorted((REPO / "ingest" / "priority" / "data").glob("earlier-*.jsonl")),
    ]
    rows = [
        json.loads(line)
        for f in files
        if f.exists()
        for line in f.read_text(encoding="utf-8").splitlines()
    ]
    return [f"{row['subject']}\n{row['body']}" for row in rows]


def test_no_false_negative_on_real_mail() -> None:
    """On every example mail, each rule pattern that matches also passes the prefilter."""
    patterns = all_patterns()
    corpus = texts()
    if not corpus:
        pytest.skip("no labelled examples at hand")
    misses = [
        (p.pattern, text[:60])
        for text in corpus
        for p in patterns
        if p.search(text) and not may_match(p, text.lower())
    ]
    assert misses == []


@given(st.text(max_size=300), st.sampled_from(all_patterns()))
def test_no_false_negative_on_any_text(text: str, pattern: re.Pattern[str]) -> None:
    """For any text, a pattern that matches is never ruled out."""
    if pattern.search(text):
        assert may_match(pattern, text.lower())


def vocabulary() -> list[str]:
    """Words the rules look for, in several casings, so generated text often matches."""
    words = {w for p in all_patterns() for w in (required_factors(p.pattern) or ())}
    return sorted({v for w in words for v in (w, w.upper(), w.title())})


@given(
    st.lists(st.sampled_from(vocabulary()), min_size=1, max_size=12),
    st.lists(
        st.sampled_from([" ", "\n", ". ", ", ", "? ", "-", "", "7 "]), min_size=12, max_size=12
    ),
    st.sampled_from(all_patterns()),
)
def test_no_false_negative_on_rule_words(
    words: list[str], seps: list[str], pattern: re.Pattern[str]
) -> None:
    """Text made of the rules' own words, in any casing, never loses a match to the prefilter."""
    text = "".join(w + s for w, s in zip(words, seps, strict=False))
    if pattern.search(text):
        assert may_match(pattern, text.lower())
