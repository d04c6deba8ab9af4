"""A small hand-written priority model, so tests can steer what the model says."""

from __future__ import annotations

from typing import Any


def block(analyzer: str, terms: dict[str, tuple[float, float, float]]) -> dict[str, Any]:
    """A model file's block whose terms carry (high, low, medium) coefficients, idf 1."""
    return {
        "analyzer": analyzer,
        "ngram_range": [1, 2] if analyzer == "word" else [3, 4],
        "token_pattern": r"(?u)\b\w\w+\b",
        "lowercase": True,
        "sublinear_tf": True,
        "norm": "l2",
        "vocabulary": list(terms),
        "idf": [1.0] * len(terms),
        "coef": [[c[i] for c in terms.values()] for i in range(3)],
    }


def document(**changes: Any) -> dict[str, Any]:
    """A small hand-written model: 'outage' says High, 'how' says Low, 'slow' Medium."""
    words = {
        "outage": (3.0, -2.0, -1.0),
        "all users": (2.0, -1.0, -1.0),
        "how": (-2.0, 3.0, -1.0),
        "slow": (-1.0, -1.0, 2.0),
        "the": (0.0, 0.0, 0.0),
    }
    doc = {
        "format": "mail2case-priority-model",
        "version": 1,
        "name": "tiny",
        "probabilistic": True,
        "classes": ["high", "low", "medium"],
        "intercepts": [0.0, 0.0, 0.5],
        "blocks": [block("word", words), block("char_wb", {"rash": (1.0, 0.0, -1.0)})],
    }
    return doc | changes
