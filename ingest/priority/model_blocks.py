"""One TF-IDF block of the priority model: scikit-learn's analyzers and weighting, in Python.

Each function here mirrors the scikit-learn code it is named after (``TfidfVectorizer``
with ``lowercase=True``, ``sublinear_tf``, ``norm="l2"``, ``analyzer`` "word" or
"char_wb"); the equivalence test fails if any of them drifts.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from dataclasses import dataclass
from itertools import chain
from operator import mul
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["Analyzer", "TextBlock", "Weighted", "block_document", "read_block"]

Analyzer = Literal["word", "char_wb"]
ANALYZERS: tuple[Analyzer, ...] = ("word", "char_wb")
# Per word, the known char n-grams it yields are memoised (mail repeats its words);
# the memo is dropped whole when full, which keeps it bounded and the results the same.
_WORD_MEMO_SIZE = 50_000


class TextBlock:
    """The n-grams of one analyzer, their idf and each class's coefficient for them."""

    __slots__ = (
        "_memo",
        "_pattern",
        "_terms",
        "analyzer",
        "coef",
        "idf",
        "ngram_range",
        "sublinear_tf",
        "vocabulary",
    )

    def __init__(
        self,
        analyzer: Analyzer,
        ngram_range: tuple[int, int],
        token_pattern: str,
        *,
        vocabulary: Mapping[str, int],
        idf: Sequence[float],
        coef: Sequence[Sequence[float]],
        sublinear_tf: bool,
    ) -> None:
        self.analyzer = analyzer
        self.ngram_range = ngram_range
        self.sublinear_tf = sublinear_tf
        self.vocabulary = vocabulary  # term -> column
        # Columns in flat arrays: 8 bytes a value where a float object costs 24.
        self.idf = array("d", idf)
        self.coef = tuple(array("d", row) for row in coef)  # one row per class
        self._pattern = re.compile(token_pattern)
        self._memo: dict[str, tuple[int, ...]] = {}
        self._terms: list[str] = []

    @property
    def token_pattern(self) -> str:
        """The word tokenizer's regular expression (scikit-learn's ``token_pattern``)."""
        return self._pattern.pattern

    def terms(self) -> list[str]:
        """The vocabulary in column order."""
        if not self._terms:
            self._terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return self._terms

    def counts(self, text: str) -> Counter[int]:
        """How often each known n-gram (by column) occurs in ``text``, lower-cased."""
        lowered = text.lower()
        if self.analyzer == "word":
            grams = word_ngrams(self._pattern.findall(lowered), self.ngram_range)
            found = Counter(map(self.vocabulary.get, grams))
            del found[None]  # the n-grams outside the vocabulary (a Counter ignores absent keys)
            return cast("Counter[int]", found)
        # scikit-learn folds runs of blanks into one space first; split() skips them anyway.
        return Counter(chain.from_iterable(map(self.known_char_columns, lowered.split())))

    def known_char_columns(self, word: str) -> tuple[int, ...]:
        """The columns of the char_wb n-grams of ``word`` in the vocabulary, repeats kept."""
        columns = self._memo.get(word)
        if columns is None:
            known = self.vocabulary
            grams = char_wb_ngrams(word, self.ngram_range)
            columns = tuple(known[g] for g in grams if g in known)
            if len(self._memo) >= _WORD_MEMO_SIZE:
                self._memo.clear()
            self._memo[word] = columns
        return columns

    def tfidf(self, counts: Counter[int]) -> Weighted:
        """The counted columns, their counts, tf-idf values and the values' l2 norm."""
        columns = list(counts)
        counted = list(counts.values())
        tf: Iterable[float] = counted
        if self.sublinear_tf:
            big = max(counted, default=0) >= _TABLE
            tf = map(_sublinear, counted) if big else map(_SUBLINEAR.__getitem__, counted)
        values = list(map(mul, tf, map(self.idf.__getitem__, columns)))
        return Weighted(columns, counted, values, math.sqrt(sum(map(mul, values, values))))

    def scores(self, weighted: Weighted) -> list[float]:
        """This block's part of each class's decision value: coefficients . normalised tf-idf."""
        columns, values, norm = weighted.columns, weighted.values, weighted.norm
        if norm == 0:
            return [0.0] * len(self.coef)  # no known n-gram: scikit-learn leaves the row at zero
        return [sum(map(mul, values, map(row.__getitem__, columns))) / norm for row in self.coef]


@dataclass(frozen=True, slots=True)
class Weighted:
    """A text's known n-grams in one block: columns, counts, tf-idf values, their l2 norm."""

    columns: list[int]
    counts: list[int]
    values: list[float]
    norm: float


# scikit-learn's sublinear tf, 1 + ln(tf), looked up for the counts mail has.
_TABLE = 256
_SUBLINEAR = [0.0, *(1.0 + math.log(n) for n in range(1, _TABLE))]


def _sublinear(count: float) -> float:
    return 1.0 + math.log(count)


def word_ngrams(tokens: Sequence[str], ngram_range: tuple[int, int]) -> list[str]:
    """scikit-learn's ``_word_ngrams``: the n-grams of the tokens, joined by one space."""
    low, high = ngram_range
    grams = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        # The shifted copies end where the shortest does: n-grams that fit, no more.
        grams.extend(map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False)))
    return grams


def char_wb_ngrams(word: str, ngram_range: tuple[int, int]) -> list[str]:
    """scikit-learn's ``_char_wb_ngrams`` for one word, padded with a space each side."""
    padded = f" {word} "
    size = len(padded)
    grams: list[str] = []
    for n in range(ngram_range[0], ngram_range[1] + 1):
        if size <= n:
            # A padded word no longer than n counts once, whole, and ends the word.
            grams.append(padded)
            break
        grams.extend(padded[i : i + n] for i in range(size - n + 1))
    return grams


def block_document(block: TextBlock) -> dict[str, Any]:
    """The JSON form of a block: vocabulary in column order, idf, coefficients per class."""
    return {
        "analyzer": block.analyzer,
        "ngram_range": list(block.ngram_range),
        "token_pattern": block.token_pattern,
        "lowercase": True,
        "sublinear_tf": block.sublinear_tf,
        "norm": "l2",
        "vocabulary": block.terms(),
        "idf": block.idf.tolist(),
        "coef": [row.tolist() for row in block.coef],
    }


def read_block(document: Any, classes: int) -> TextBlock:
    """A block from its JSON form (``block_document``), checked.

    Raises:
        ValueError: an unsupported setting, or lengths that do not agree.
        KeyError, TypeError: a field is missing or of the wrong type.
    """
    analyzer = document["analyzer"]
    if analyzer not in ANALYZERS:
        raise ValueError(f"priority model: analyzer {analyzer!r} is not one of {ANALYZERS}")
    if document["lowercase"] is not True or document["norm"] != "l2":
        raise ValueError("priority model: only lowercase=true and norm='l2' are supported")
    low, high = (int(n) for n in document["ngram_range"])
    if not 1 <= low <= high:
        raise ValueError(f"priority model: bad ngram_range {[low, high]}")
    terms = [str(t) for t in document["vocabulary"]]
    idf = [float(v) for v in document["idf"]]
    coef = [[float(v) for v in row] for row in document["coef"]]
    if len(coef) != classes or any(len(column) != len(terms) for column in (idf, *coef)):
        raise ValueError("priority model: vocabulary, idf and coefficients do not agree")
    vocabulary = {term: column for column, term in enumerate(terms)}
    if len(vocabulary) != len(terms):
        raise ValueError("priority model: a term appears twice in a vocabulary")
    return TextBlock(
        cast("Analyzer", analyzer),
        (low, high),
        str(document["token_pattern"]),
        vocabulary=vocabulary,
        idf=idf,
        coef=coef,
        sublinear_tf=bool(document["sublinear_tf"]),
    )
