"""Retraining on a site's labels: the new model learns them, scored fairly against the old."""

from __future__ import annotations

from functools import cache

import pytest

from ingest.priority.decision import decide_priority
from ingest.priority.inference import PriorityRules
from ingest.priority.model import PriorityModel
from ingest.priority.retraining import Current, Retrained, SiteCase, retrain
from ingest.priority.training import DATA, Example, load_examples, train
from sla.policy import Priority
from tests.support.site_priority import LEDGER_LAGS, NEW_LEDGER_LAG

RULES = PriorityRules.default()


@cache
def shipped() -> tuple[Example, ...]:
    """A slice of the shipped data: enough to train on, small enough for a unit test."""
    files = [DATA / "train-en-analytics-and-bi.jsonl", DATA / "train-en-point-of-sale.jsonl"]
    return tuple(load_examples(files))


def site(label: Priority = Priority.HIGH) -> list[SiteCase]:
    """The team's cases: every Quillon lag labelled ``label``."""
    return [SiteCase(3000 + i, label, s, b) for i, (s, b) in enumerate(LEDGER_LAGS)]


def decided(model: PriorityModel, subject: str, body: str) -> Priority:
    """The daemon's decision with ``model``."""
    return decide_priority(subject, body, {}, RULES, model=model).priority


def test_the_new_model_learns_the_teams_labels() -> None:
    """The team calls Quillon lag High; the old model does not, the new one does on new text."""
    old = train(shipped())
    assert decided(old, *NEW_LEDGER_LAG) is not Priority.HIGH
    result = retrain(shipped(), site(), Current(old), RULES)
    assert decided(result.model, *NEW_LEDGER_LAG) is Priority.HIGH
    assert (result.examples, result.site_examples) == (len(shipped()), len(LEDGER_LAGS))
    assert result.accuracy_before is not None
    assert result.accuracy_after is not None
    assert result.accuracy_after > result.accuracy_before
    assert result.is_not_worse


def test_a_model_that_learned_the_site_is_not_scored_on_what_it_saw() -> None:
    """Its recipe is refit per fold: the same recipe scores the same as the new one."""
    learned = retrain(shipped(), site(), Current(train(shipped())), RULES).model
    # Scored as it is, the model would get every case it was trained on right.
    assert all(decided(learned, case.subject, case.text) is case.label for case in site())
    refs = [case.ref for case in site()]
    result = retrain(shipped(), site(), Current(learned, refs), RULES)
    assert result.accuracy_before == result.accuracy_after


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [(0.8, 0.8, True), (0.8, 0.81, True), (0.8, 0.79, False), (None, 0.9, False)],
)
def test_not_worse_means_at_least_the_current_score(
    before: float | None, after: float | None, *, expected: bool
) -> None:
    """Equal is enough; lower, or nothing to compare, is not."""
    model = PriorityModel.shipped()
    assert Retrained(model, 1, 2, before, after).is_not_worse is expected


@pytest.mark.parametrize("count", [0, 1])
def test_too_few_site_cases_cannot_be_compared(count: int) -> None:
    """Below two cases there is no cross-validation: no accuracy, never 'not worse'."""
    result = retrain(shipped(), site()[:count], Current(train(shipped())), RULES)
    assert (result.accuracy_before, result.accuracy_after) == (None, None)
    assert result.site_examples == count
    assert not result.is_not_worse
