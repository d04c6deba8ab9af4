"""Train the priority model with scikit-learn: load labelled mail, cross-validate, export.

This is the training path, not the daemon's: it imports scikit-learn and reads files.
What it exports is a ``PriorityModel`` (``ingest/priority/model.py``), which runs
without scikit-learn. ``python -m ingest.priority.training OUTPUT`` builds the default
model from the repository's labelled data (``scripts/build-priority-model.sh``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from ingest.priority.model import PriorityModel, model_text
from ingest.priority.model_blocks import TextBlock
from sla.policy import Priority

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from numpy.typing import NDArray

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_DATA",
    "SITE_WEIGHT",
    "Example",
    "Fitted",
    "ModelConfig",
    "cross_validated",
    "decision_values",
    "export",
    "fit",
    "load_examples",
    "train",
    "transform",
]

DATA = Path(__file__).resolve().parent / "data"
# The default model's data, shipped in the package so a site can retrain on it: the
# training sets written for it, and the earlier rounds' labelled sets
# (ingest/priority/data/README.md). Each file is one group in the cross-validation.
DEFAULT_DATA = (
    *sorted(DATA.glob("train-*.jsonl")),
    *sorted(DATA.glob("earlier-*.jsonl")),
)
WORD_REGEX = r"(?u)\b\w\w+\b"  # scikit-learn's default: words of two characters or more
SEED = 0
GROUP_FOLDS = 6
SITE_WEIGHT = 3.0  # how many shipped examples one of the site's own counts as


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled email: the text the model reads, its label, group, weight and origin."""

    text: str
    label: Priority
    group: str = ""
    weight: float = 1.0
    subject: str = ""  # as written, for the rules (which reduce it themselves)
    body: str = ""

    def weighted(self, weight: float) -> Example:
        """The same example counted ``weight`` times in training."""
        return replace(self, weight=weight)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """What to train: the classifier, its C, the n-gram blocks and the class weights."""

    classifier: Literal["logistic", "svm"] = "logistic"
    c: float = 10.0
    word_ngrams: tuple[int, int] | None = (1, 2)
    char_ngrams: tuple[int, int] | None = None
    min_df: int = 1
    class_weight: dict[str, float] | None = field(default=None, hash=False)

    def describe(self) -> str:
        """A short name for reports: 'logistic C=10 word1-2 char_wb2-5'."""
        parts = [f"{self.classifier} C={self.c:g}"]
        if self.word_ngrams:
            parts.append(f"word{self.word_ngrams[0]}-{self.word_ngrams[1]}")
        if self.char_ngrams:
            parts.append(f"char_wb{self.char_ngrams[0]}-{self.char_ngrams[1]}")
        if self.min_df > 1:
            parts.append(f"min_df={self.min_df}")
        if self.class_weight:
            parts.append("weights " + ",".join(f"{k}={v:g}" for k, v in self.class_weight.items()))
        return " ".join(parts)


# Chosen by measurement (bench/README.md): logistic regression for a calibrated
# confidence; word 1-2-grams seen in two emails at least. Char n-grams scored 1-2 points
# more in grouped cross-validation but cost 3-6x the rules' CPU per message.
DEFAULT_CONFIG = ModelConfig("logistic", 10.0, (1, 2), None, min_df=2)


def load_examples(paths: Iterable[Path], *, weight: float = 1.0) -> list[Example]:
    """Labelled emails from JSON lines (``subject``, ``body``, ``label``); group = file stem.

    Raises:
        ValueError: a line without a subject, body or a valid label (with its place).
    """
    examples = []
    for path in paths:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if line.strip():
                examples.append(_example(line, f"{path.name}:{number}", path.stem, weight))
    return examples


def _example(line: str, where: str, group: str, weight: float) -> Example:
    try:
        row = json.loads(line)
        subject, body = str(row["subject"]), str(row["body"])
        label = Priority.parse(str(row["label"]))
        return Example(model_text(subject, body), label, group, weight, subject, body)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{where}: not a labelled email ({error})") from None


@dataclass(frozen=True, slots=True)
class Fitted:
    """A fitted vectoriser and classifier (scikit-learn objects)."""

    vectorizers: tuple[TfidfVectorizer, ...]
    classifier: LogisticRegression | LinearSVC
    config: ModelConfig


def _vectorizers(config: ModelConfig) -> list[tuple[str, TfidfVectorizer]]:
    blocks = []
    if config.word_ngrams:
        word = TfidfVectorizer(
            ngram_range=config.word_ngrams,
            token_pattern=WORD_REGEX,
            sublinear_tf=True,
            min_df=config.min_df,
            dtype=np.float64,
        )
        blocks.append(("word", word))
    if config.char_ngrams:
        char = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=config.char_ngrams,
            sublinear_tf=True,
            min_df=config.min_df,
            dtype=np.float64,
        )
        blocks.append(("char_wb", char))
    if not blocks:
        raise ValueError("a model needs word or char n-grams")
    return blocks


def _classifier(config: ModelConfig) -> LogisticRegression | LinearSVC:
    if config.classifier == "svm":
        return LinearSVC(C=config.c, class_weight=config.class_weight, random_state=SEED)
    return LogisticRegression(
        C=config.c, class_weight=config.class_weight, max_iter=5000, random_state=SEED
    )


def fit(examples: Sequence[Example], config: ModelConfig = DEFAULT_CONFIG) -> Fitted:
    """Fit the TF-IDF blocks and the classifier on ``examples``, each with its weight."""
    union = FeatureUnion(_vectorizers(config))
    features = union.fit_transform([e.text for e in examples])
    labels = np.array([e.label.value for e in examples])
    weights = np.array([e.weight for e in examples], dtype=np.float64)
    classifier = _classifier(config)
    classifier.fit(features, labels, sample_weight=weights)
    vectorizers = tuple(v for _, v in union.transformer_list)
    return Fitted(vectorizers, classifier, config)


def transform(fitted: Fitted, texts: Sequence[str]) -> Any:
    """The feature matrix scikit-learn's pipeline gives ``texts`` (blocks side by side)."""
    from scipy.sparse import hstack  # noqa: PLC0415 # only the checks need it

    return hstack([v.transform(texts) for v in fitted.vectorizers]).tocsr()


def decision_values(fitted: Fitted, texts: Sequence[str]) -> NDArray[np.float64]:
    """scikit-learn's decision values for ``texts``: one column per class, sorted labels."""
    values: NDArray[np.float64] = fitted.classifier.decision_function(transform(fitted, texts))
    return values


def export(fitted: Fitted, name: str = "model") -> PriorityModel:
    """The fitted model as a ``PriorityModel`` (plain Python, no scikit-learn at inference)."""
    coef = np.asarray(fitted.classifier.coef_, dtype=np.float64)
    blocks, offset = [], 0
    for vectorizer in fitted.vectorizers:
        blocks.append(_block(vectorizer, coef[:, offset : offset + len(vectorizer.vocabulary_)]))
        offset += len(vectorizer.vocabulary_)
    return PriorityModel(
        [Priority(c) for c in fitted.classifier.classes_],
        [float(v) for v in fitted.classifier.intercept_],
        blocks,
        probabilistic=isinstance(fitted.classifier, LogisticRegression),
        name=name,
    )


def _block(vectorizer: TfidfVectorizer, coef: NDArray[np.float64]) -> TextBlock:
    return TextBlock(
        vectorizer.analyzer,
        vectorizer.ngram_range,
        vectorizer.token_pattern,
        vocabulary={str(term): int(column) for term, column in vectorizer.vocabulary_.items()},
        idf=[float(v) for v in vectorizer.idf_],
        coef=[[float(v) for v in row] for row in coef],
        sublinear_tf=vectorizer.sublinear_tf,
    )


def train(
    examples: Sequence[Example],
    config: ModelConfig = DEFAULT_CONFIG,
    name: str = "model",
    *,
    site: Sequence[Example] = (),
    site_weight: float = SITE_WEIGHT,
) -> PriorityModel:
    """Fit on ``examples`` plus a site's own labelled cases, each counted ``site_weight`` times.

    The weight lets a few hundred corrections move a model trained on a thousand
    examples (``bench/priority_model.py --section curve`` measured the choice).
    """
    weighted = [e.weighted(site_weight) for e in site]
    return export(fit([*examples, *weighted], config), name)


Split = Literal["group", "stratified"]


def cross_validated(
    examples: Sequence[Example],
    config: ModelConfig = DEFAULT_CONFIG,
    split: Split = "group",
    extra: Sequence[Example] = (),
) -> list[Priority]:
    """Each example's class from a model that did not see it (nor, by group, its group).

    ``group``: six folds of whole groups (a product's, a language's or an earlier
    round's file; 18 files in the default data, three per fold), which measures
    products never seen. ``stratified``: five shuffled folds with the class mix kept.
    ``extra`` examples join every training fold and are never predicted.
    """
    labels = np.array([e.label.value for e in examples])
    if split == "group":
        groups = [e.group for e in examples]
        splits = min(GROUP_FOLDS, len(set(groups)))
        folds = GroupKFold(splits).split(labels, labels, groups)
    else:
        folds = StratifiedKFold(5, shuffle=True, random_state=SEED).split(labels, labels)
    predicted: list[Priority] = [Priority.MEDIUM] * len(examples)
    for train_at, test_at in folds:
        fitted = fit([examples[i] for i in train_at] + list(extra), config)
        values = decision_values(fitted, [examples[i].text for i in test_at])
        classes = fitted.classifier.classes_
        for row, index in zip(values, test_at, strict=True):
            predicted[index] = Priority(classes[int(np.argmax(row))])
    return predicted


def main(argv: Sequence[str] | None = None) -> int:
    """Build the default model from the repository's data and write it to OUTPUT."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    examples = load_examples(DEFAULT_DATA)
    model = train(examples, DEFAULT_CONFIG, name=f"default ({DEFAULT_CONFIG.describe()})")
    args.output.write_bytes(model.to_bytes())
    sys.stdout.write(f"{args.output}: {len(examples)} examples, {DEFAULT_CONFIG.describe()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
