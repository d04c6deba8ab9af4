"""Retrain the priority model on the shipped data plus a site's own labelled cases.

The new model must earn its place: both the current model and the new one are
scored on the site's cases by cross-validation, each fold predicted by a model that
did not see it, with the rules' floor applied as the daemon applies it. The caller
installs the new model only if it is not worse (``mail2case priority train``).

How the current model is scored depends on what it is:
- a model that learned nothing of this site (the shipped one, or a file the
  operator pinned) predicts every site case as it is;
- a model an earlier ``priority train`` built is rebuilt per fold from its recipe
  (the shipped data plus the site cases it learned, minus the fold), so that it is
  not scored on cases it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sklearn.model_selection import KFold

from ingest.priority.decision import DEFAULT_FLOOR, Floor, decide_priority
from ingest.priority.model import model_text
from ingest.priority.training import (
    DEFAULT_CONFIG,
    SEED,
    SITE_WEIGHT,
    Example,
    ModelConfig,
    train,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from ingest.priority.inference import PriorityRules
    from ingest.priority.model import PriorityModel
    from sla.policy import Priority

__all__ = ["MAX_FOLDS", "Current", "Retrained", "SiteCase", "retrain"]

MAX_FOLDS = 5
Fold = tuple[list[int], list[int]]  # the site cases to train on, and those to score


@dataclass(frozen=True, slots=True)
class SiteCase:
    """One of the site's labelled cases: its ref, the team's label, the first message."""

    ref: int
    label: Priority
    subject: str
    text: str

    def example(self) -> Example:
        """As a training example (grouped as the site)."""
        text = model_text(self.subject, self.text)
        return Example(text, self.label, "site", 1.0, self.subject, self.text)


@dataclass(frozen=True, slots=True)
class Retrained:
    """The new model and the figures that decide whether it is installed."""

    model: PriorityModel
    examples: int  # shipped examples trained on
    site_examples: int
    accuracy_before: float | None  # None: fewer than two site cases to score on
    accuracy_after: float | None

    @property
    def is_not_worse(self) -> bool:
        """Whether the new model scores at least the current one on the site's cases."""
        if self.accuracy_before is None or self.accuracy_after is None:
            return False
        return self.accuracy_after >= self.accuracy_before


@dataclass(frozen=True, slots=True)
class Current:
    """The model deciding now, and the site refs it learned from (empty: none)."""

    model: PriorityModel
    learned_refs: Collection[int] = ()


def retrain(
    shipped: Sequence[Example],
    site: Sequence[SiteCase],
    current: Current,
    rules: PriorityRules,
    *,
    floor: Floor = DEFAULT_FLOOR,
    config: ModelConfig = DEFAULT_CONFIG,
    site_weight: float = SITE_WEIGHT,
) -> Retrained:
    """Score the current model and the new recipe on ``site``; train the new model on all."""
    before = after = None
    folds = _folds(len(site))
    if folds:
        scorer = _Scorer(shipped, site, rules, floor, config, site_weight)
        before = scorer.accuracy(folds, current)
        after = scorer.accuracy(folds, None)
    model = train(
        shipped,
        config,
        name=f"site ({config.describe()}; {len(site)} site cases x{site_weight:g})",
        site=[case.example() for case in site],
        site_weight=site_weight,
    )
    return Retrained(model, len(shipped), len(site), before, after)


def _folds(n: int) -> list[Fold]:
    """Shuffled folds over ``n`` site cases; none below two cases."""
    if n < 2:  # noqa: PLR2004 - cross-validation needs a case to train on and one to test
        return []
    splitter = KFold(min(MAX_FOLDS, n), shuffle=True, random_state=SEED)
    return [(list(a), list(b)) for a, b in splitter.split(list(range(n)))]


@dataclass(frozen=True, slots=True)
class _Scorer:
    """Cross-validated accuracy on the site's cases, with the daemon's decision."""

    shipped: Sequence[Example]
    site: Sequence[SiteCase]
    rules: PriorityRules
    floor: Floor
    config: ModelConfig
    site_weight: float

    def accuracy(self, folds: Sequence[Fold], current: Current | None) -> float:
        """``current`` None: the new recipe (every site case outside the fold)."""
        right = 0
        for train_at, test_at in folds:
            model = self._model(train_at, current)
            for index in test_at:
                case = self.site[index]
                decision = decide_priority(
                    case.subject, case.text, {}, self.rules, model=model, floor=self.floor
                )
                right += decision.priority is case.label
        return round(right / len(self.site), 4)

    def _model(self, train_at: Sequence[int], current: Current | None) -> PriorityModel:
        if current is not None and not current.learned_refs:
            return current.model  # it saw none of the site's cases: score it as it is
        wanted = None if current is None else set(current.learned_refs)
        chosen = [
            self.site[i].example() for i in train_at if wanted is None or self.site[i].ref in wanted
        ]
        return train(
            self.shipped,
            self.config,
            site=chosen,
            site_weight=self.site_weight,
        )
