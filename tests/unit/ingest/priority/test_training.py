"""Training: the exported model decides as scikit-learn does, reproducibly; site data moves it."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ingest.priority.model import PriorityModel
from ingest.priority.training import (
    DEFAULT_CONFIG,
    DEFAULT_DATA,
    Example,
    ModelConfig,
    cross_validated,
    decision_values,
    export,
    fit,
    load_examples,
    train,
)
from sla.policy import Priority

if TYPE_CHECKING:
    from pathlib import Path

    from ingest.priority.training import Fitted

SMALL = ModelConfig("logistic", 10, (1, 2), (2, 4))


@cache
def repo_examples() -> tuple[Example, ...]:
    """Every labelled email in the repository."""
    return tuple(load_examples(DEFAULT_DATA))


@cache
def default_fit() -> Fitted:
    """The default configuration fitted on the repository's data (what the script ships)."""
    return fit(repo_examples(), DEFAULT_CONFIG)


def assert_same_decisions(fitted: Fitted, model: PriorityModel, texts: list[str]) -> None:
    """The pure model's decision values are scikit-learn's within 1e-9, so are its classes."""
    theirs = decision_values(fitted, texts)
    ours = np.array([model.decision_values(text) for text in texts])
    assert np.abs(theirs - ours).max() < 1e-9
    classes = [Priority(c) for c in fitted.classifier.classes_]
    assert [classes[i] for i in theirs.argmax(axis=1)] == [
        model.predict_text(text).priority for text in texts
    ]


def test_repository_data_loads() -> None:
    """Every file of the default data loads, each file a group of its own."""
    examples = repo_examples()
    assert len(examples) >= 1200
    assert len({e.group for e in examples}) == len(DEFAULT_DATA)
    assert {e.label for e in examples} == set(Priority)


@pytest.mark.timeout(900)
def test_default_model_decides_exactly_as_scikit_learn_on_all_repository_data() -> None:
    """On all repository data the pure model's decision values equal scikit-learn's (1e-9)."""
    fitted = default_fit()
    model = PriorityModel.from_bytes(export(fitted).to_bytes())
    assert_same_decisions(fitted, model, [e.text for e in repo_examples()])


@pytest.mark.timeout(900)
def test_shipped_model_is_the_one_the_repository_data_builds() -> None:
    """Rebuilding from the repository's data gives the shipped model's decisions."""
    fitted = default_fit()
    shipped = PriorityModel.shipped()
    texts = [e.text for e in repo_examples()]
    assert_same_decisions(fitted, shipped, texts)


@pytest.mark.timeout(600)
def test_building_twice_writes_the_same_bytes() -> None:
    """Fixed seeds and a gzip without a timestamp: the same data gives the same file."""
    examples = repo_examples()[::4]
    first = train(examples, SMALL, name="twice").to_bytes()
    assert train(examples, SMALL, name="twice").to_bytes() == first


@pytest.mark.timeout(600)
def test_small_model_decides_exactly_as_scikit_learn() -> None:
    """Another configuration (two blocks, char 2-4) also exports exactly."""
    fitted = fit(repo_examples()[::3], SMALL)
    assert_same_decisions(fitted, export(fitted), [e.text for e in repo_examples()])


@pytest.mark.timeout(600)
def test_site_corrections_with_a_weight_move_the_model() -> None:
    """A site that calls invoice copies High gets High after 100 corrections, Low before."""
    base = list(repo_examples()[::2])
    months = ["January", "February", "March", "April", "May", "June", "July", "August"]
    site = [
        Example(
            f"Invoice copy\nPlease send a copy of invoice {n} for {months[n % 8]}.", Priority.HIGH
        )
        for n in range(100)
    ]
    probe = "Invoice copy\nCould you send me a copy of invoice 4711 for September?"
    config = ModelConfig("logistic", 10, (1, 2), None)
    before = train(base, config).predict_text(probe).priority
    after = train(base, config, site=site, site_weight=3.0).predict_text(probe).priority
    assert before is Priority.LOW
    assert after is Priority.HIGH


@pytest.mark.timeout(600)
def test_cross_validation_predicts_every_example_once() -> None:
    """Each example gets a prediction from a model that did not see its group."""
    examples = [e for e in repo_examples() if e.group.endswith(("-de", "-fr", "-nl"))]
    config = ModelConfig("logistic", 10, (1, 1), None)
    grouped = cross_validated(examples, config, "group")
    assert len(grouped) == len(examples)
    accuracy = np.mean([e.label is p for e, p in zip(examples, grouped, strict=True)])
    assert accuracy > 0.5  # chance is about 0.36: it learned something it could carry over


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    """A line without a label is refused with its file and line number."""
    path = tmp_path / "site.jsonl"
    good = {"subject": "s", "body": "b", "label": "Low"}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({"subject": "s", "body": "b"}) + "\n")
    with pytest.raises(ValueError, match=r"site\.jsonl:3: not a labelled email"):
        load_examples([path])


def test_examples_keep_group_weight_and_origin(tmp_path: Path) -> None:
    """An example knows its file (group), its weight, and its subject and body as written."""
    path = tmp_path / "site.jsonl"
    row = {"subject": "Re: Down", "body": "All down.\n> old quote", "label": "high"}
    path.write_text(json.dumps(row) + "\n")
    (example,) = load_examples([path], weight=4.0)
    assert (example.group, example.weight, example.label) == ("site", 4.0, Priority.HIGH)
    assert (example.subject, example.body) == ("Re: Down", "All down.\n> old quote")
    assert example.text == "Down\nAll down."
