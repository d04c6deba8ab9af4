"""A trained linear text model for priority, read from JSON and run without scikit-learn.

The file holds what scikit-learn's ``TfidfVectorizer`` blocks learned (vocabulary,
idf, analyzer, n-gram range, sublinear tf, l2 norm) and the classifier's coefficients
and intercepts. This module reproduces that featurisation in plain Python, so the
daemon's inference imports neither scikit-learn nor NumPy; a test holds its decision
values to scikit-learn's within 1e-9 on every labelled example in the repository.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import islice
from operator import mul, sub, truediv
from typing import TYPE_CHECKING, Any

from ingest.priority.function_words import is_evidence
from ingest.priority.model_blocks import TextBlock, Weighted, block_document, read_block
from ingest.priority.text import new_text
from ingest.triage.subject import bare_subject
from sla.policy import Priority

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["FORMAT", "ModelPrediction", "PriorityModel", "model_text", "reduced"]

FORMAT = "mail2case-priority-model"
FORMAT_VERSION = 1
MAX_BODY_CHARS = 60_000
MAX_TEXT_CHARS = 12_000
SHIPPED_MODEL = "model.json.gz"
# Characters around a whitespace-separated word that are not part of the term shown.
_PUNCTUATION = "\"'`.,;:!?()[]{}<>*_-/\\|\u00ab\u00bb\u201c\u201d\u2018\u2019\u2013\u2014"


def reduced(subject: str, body: str) -> tuple[str, str]:
    """The subject without Re:/Fwd: prefixes, and the new text (no quotes, no signature).

    The same reduction as the rules' (``infer_priority``), so both read the same words.
    """
    # The problem is stated at the top; a megabyte of pasted logs adds only time.
    return bare_subject(subject[:1000]), new_text(body[:MAX_BODY_CHARS])[:MAX_TEXT_CHARS]


def model_text(subject: str, body: str) -> str:
    """What the model reads: the reduced subject and new text, on separate lines.

    Training and inference both go through here, so they featurise the same text.
    """
    return "\n".join(reduced(subject, body))


@dataclass(frozen=True, slots=True)
class ModelPrediction:
    """The model's class, its confidence (0-1), the runner-up and the terms that decided it."""

    priority: Priority
    confidence: float
    runner_up: Priority
    runner_up_confidence: float
    margin: float  # the winner's decision value minus the runner-up's
    terms: tuple[str, ...]  # strongest evidence for the winner over the runner-up first
    shares: tuple[tuple[Priority, float], ...] = ()  # every class's share, in model order

    def share(self, priority: Priority) -> float:
        """The model's share (probability, for logistic regression) of ``priority``."""
        return next((value for cls, value in self.shares if cls is priority), 0.0)


@dataclass(frozen=True, slots=True)
class _Scored:
    """The text, its decision value per class, and each block's weighted n-grams."""

    text: str
    values: tuple[float, ...]
    blocks: tuple[Weighted, ...]


class PriorityModel:
    """Linear classifier over TF-IDF blocks; ``predict`` gives the class with its evidence."""

    __slots__ = ("blocks", "classes", "intercepts", "name", "probabilistic")

    def __init__(
        self,
        classes: Sequence[Priority],
        intercepts: Sequence[float],
        blocks: Sequence[TextBlock],
        *,
        probabilistic: bool,
        name: str = "model",
    ) -> None:
        self.classes = tuple(classes)
        self.intercepts = tuple(intercepts)
        self.blocks = tuple(blocks)
        # Logistic regression: the softmax of the decision values is its probability.
        # For a linear SVM the same softmax only ranks: read it as a margin, not odds.
        self.probabilistic = probabilistic
        self.name = name

    @classmethod
    def shipped(cls) -> PriorityModel:
        """The model built from the repository's labelled data (``model.json.gz``)."""
        return _shipped()

    @classmethod
    def from_bytes(cls, data: bytes) -> PriorityModel:
        """Read a model file: JSON, gzip-compressed or not.

        Raises:
            ValueError: not a model file of this format and version.
        """
        try:
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            document = json.loads(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"priority model: not a gzip file ({error})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"priority model: not JSON ({error})") from None
        return cls.from_document(document)

    @classmethod
    def from_document(cls, document: object) -> PriorityModel:
        """Build a model from a decoded JSON document of ``to_document``'s shape.

        Raises:
            ValueError: a field is missing or malformed.
        """
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"priority model: not a {FORMAT} document")
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(f"priority model: version {document.get('version')!r} is not 1")
        try:
            classes = _classes(document["classes"])
            intercepts = tuple(float(v) for v in document["intercepts"])
            blocks = tuple(read_block(b, len(classes)) for b in document["blocks"])
            probabilistic = bool(document["probabilistic"])
            name = str(document.get("name", "model"))
        except (KeyError, TypeError) as error:
            raise ValueError(f"priority model: malformed ({error!r})") from None
        if len(classes) < 2 or len(intercepts) != len(classes) or not blocks:  # noqa: PLR2004 # two classes is the least a classifier tells apart
            raise ValueError("priority model: classes, intercepts and blocks do not agree")
        return cls(classes, intercepts, blocks, probabilistic=probabilistic, name=name)

    def to_document(self) -> dict[str, Any]:
        """The JSON document this model is written as (``from_document`` reads it back)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": self.name,
            "probabilistic": self.probabilistic,
            "classes": [c.value for c in self.classes],
            "intercepts": list(self.intercepts),
            "blocks": [block_document(block) for block in self.blocks],
        }

    def to_bytes(self) -> bytes:
        """The model file: compact JSON, gzip-compressed without a timestamp (reproducible)."""
        text = json.dumps(self.to_document(), ensure_ascii=False, separators=(",", ":"))
        return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)

    def decision_values(self, text: str) -> tuple[float, ...]:
        """One value per class (``classes`` order), as scikit-learn's ``decision_function``."""
        return self._score(text).values

    def probabilities(self, text: str) -> tuple[float, ...]:
        """Softmax of the decision values (``predict_proba`` for logistic regression)."""
        return _softmax(self._score(text).values)

    def predict(self, subject: str, body: str, *, terms: int = 3) -> ModelPrediction:
        """The class of an email, how sure, the runner-up, and the ``terms`` strongest terms."""
        return self.predict_text(model_text(subject, body), terms=terms)

    def predict_text(self, text: str, *, terms: int = 3) -> ModelPrediction:
        """``predict`` for text already reduced by ``model_text``."""
        scored = self._score(text)
        values = scored.values
        best, second = sorted(range(len(values)), key=lambda i: (-values[i], i))[:2]
        shares = _softmax(values)
        return ModelPrediction(
            priority=self.classes[best],
            confidence=shares[best],
            runner_up=self.classes[second],
            runner_up_confidence=shares[second],
            margin=values[best] - values[second],
            terms=self._evidence(scored, best, second, terms),
            shares=tuple(zip(self.classes, shares, strict=True)),
        )

    def _score(self, text: str) -> _Scored:
        values = list(self.intercepts)
        weighted = []
        for block in self.blocks:
            found = block.tfidf(block.counts(text))
            values = [v + p for v, p in zip(values, block.scores(found), strict=True)]
            weighted.append(found)
        return _Scored(text, tuple(values), tuple(weighted))

    def _evidence(self, scored: _Scored, best: int, second: int, limit: int) -> tuple[str, ...]:
        """Words and phrases that pushed ``best`` over ``second`` most, strongest first.

        A char n-gram's push is shared among the words it occurs in, so every term
        shown is a word or phrase of the email, never a fragment of one.
        """
        push: dict[str, float] = {}
        for block, found in zip(self.blocks, scored.blocks, strict=True):
            pushes = _pushes(block, found, best, second)
            if block.analyzer == "word":
                terms = block.terms()
                for column, value in zip(found.columns, pushes, strict=True):
                    if value > 0:
                        push[terms[column]] = push.get(terms[column], 0.0) + value
                continue
            for term, value in _word_pushes(block, found, pushes, scored.text):
                push[term] = push.get(term, 0.0) + value
        # Function words ("the", "und") push too, but name nothing a reader can check.
        ranked = sorted(push.items(), key=lambda item: (-item[1], item[0]))
        shown = (term for term, value in ranked if value > 0 and is_evidence(term))
        return tuple(islice(shown, limit))


def _pushes(block: TextBlock, found: Weighted, best: int, second: int) -> list[float]:
    """Each counted column's push towards ``best`` over ``second``: value times coefficient gap."""
    winner, runner_up = block.coef[best], block.coef[second]
    gaps = map(
        sub, map(winner.__getitem__, found.columns), map(runner_up.__getitem__, found.columns)
    )
    norm = found.norm or 1.0
    return [value / norm for value in map(mul, found.values, gaps)]


def _word_pushes(
    block: TextBlock, found: Weighted, pushes: list[float], text: str
) -> Iterator[tuple[str, float]]:
    """Each word's share of the char n-grams' pushes: per occurrence, for each it holds."""
    per_count = dict(zip(found.columns, map(truediv, pushes, found.counts), strict=True))
    for word, times in Counter(text.lower().split()).items():
        share = sum(map(per_count.__getitem__, block.known_char_columns(word)))
        term = word.strip(_PUNCTUATION)
        if term:
            yield term, share * times


def _classes(names: Sequence[object]) -> tuple[Priority, ...]:
    try:
        return tuple(Priority(str(name)) for name in names)
    except ValueError:
        raise ValueError(f"priority model: malformed classes (got {names!r})") from None


def _softmax(values: Sequence[float]) -> tuple[float, ...]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return tuple(e / total for e in exps)


@cache
def _shipped() -> PriorityModel:
    data = resources.files("ingest.priority").joinpath(SHIPPED_MODEL).read_bytes()
    return PriorityModel.from_bytes(data)
