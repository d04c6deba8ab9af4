"""How the priority model was chosen: cross-validated options, the floor, site corrections.

Sections (``--section``, default all but ``options``, which takes an hour on 2 cores):

- ``options``: each configuration, cross-validated twice on the repository's labelled
  data: grouped by file (GroupKFold, 6 folds of 3 files: product kinds, languages or
  earlier rounds' sets never seen, which is what matters at a new site) and 5
  stratified folds. Accuracy, High→Low, and each file's accuracy when it was held
  out. ``word-options``, ``char-options`` and ``min-df-options`` run a third each.
- ``floor``: the default model, grouped folds, combined with the rules' floor
  (none, at least Medium, High): accuracy and High→Low, on all files and on the
  files written after the rules (which the rules were never tuned on).
- ``guard``: the whole decision the daemon runs (model, the rules on short mail, no
  floor), grouped folds, for each level of the Low guard (a model Low becomes Medium
  when the model gives High at least that share): accuracy and High→Low. This chose
  ``HIGH_SHARE_FOR_MEDIUM``.
- ``curve``: a site's corrections, for a product kind the shipped data does not cover
  (``bench/data/priority_site_telephony.jsonl``: 400 emails to a business telephony
  service, written from the policy alone). Each seed holds 100 of them out as the
  test; n of the other 300 are added to the shipped data (``DEFAULT_DATA``) with a
  weight, as ``priority train`` does, and the daemon's decision (model and floor) is
  scored on the test; mean over seeds. The rules' score on the same tests is printed
  beside it.
- ``shared``: the shipped model with the floor on ``../shared/priority/examples.jsonl``
  (evaluation only: never trained on), against the rules; skipped when absent.

``--quick`` runs a word-only model on a few folds (CI smoke). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold

from bench.report import machine
from ingest.priority.decision import Floor, decide_priority
from ingest.priority.evaluation import Evaluation
from ingest.priority.inference import PriorityRules, infer_priority
from ingest.priority.model import PriorityModel
from ingest.priority.training import (
    DEFAULT_CONFIG,
    DEFAULT_DATA,
    GROUP_FOLDS,
    Example,
    ModelConfig,
    cross_validated,
    export,
    fit,
    load_examples,
)
from sla.policy import Priority

REPO = Path(__file__).resolve().parents[1]
SHARED_EXAMPLES = REPO.parent / "shared" / "priority" / "examples.jsonl"
SITE_DATA = REPO / "bench" / "data" / "priority_site_telephony.jsonl"
OPTIONS = {
    "word-options": [
        ModelConfig("svm", 0.3, (1, 2), None),
        ModelConfig("logistic", 10, (1, 2), None),
        ModelConfig("logistic", 30, (1, 2), None),
        ModelConfig("logistic", 10, (1, 3), None),
    ],
    "char-options": [
        ModelConfig("logistic", 10, (1, 2), (4, 4)),
        ModelConfig("logistic", 10, (1, 2), (3, 5)),
        ModelConfig("logistic", 10, (1, 2), (2, 5)),
        ModelConfig("logistic", 10, None, (2, 5)),
    ],
    # min_df=2 keeps the vocabulary small (56k -> 11k terms): 2x faster lookups.
    "min-df-options": [
        ModelConfig("svm", 0.3, (1, 2), None, min_df=2),
        ModelConfig("logistic", 3, (1, 2), None, min_df=2),
        ModelConfig("logistic", 10, (1, 2), None, min_df=2),
        ModelConfig("logistic", 30, (1, 2), None, min_df=2),
    ],
}
QUICK = ModelConfig("logistic", 10, (1, 1), None)
SITE_SIZES = (0, 25, 50, 100, 200, 300)
GUARD_LEVELS = (1.01, 0.35, 0.3, 0.25, 0.22, 0.2, 0.18, 0.15)  # 1.01: never
SITE_TEST = 100  # held out per seed, the same for every n
SITE_WEIGHTS = (1.0, 3.0, 10.0)


def scores(examples: list[Example], predicted: list[Priority]) -> Evaluation:
    return Evaluation.of((e.label, p) for e, p in zip(examples, predicted, strict=True))


def per_group(examples: list[Example], predicted: list[Priority]) -> dict[str, float]:
    by_group: dict[str, list[bool]] = defaultdict(list)
    for example, p in zip(examples, predicted, strict=True):
        by_group[example.group].append(example.label is p)
    return {group: round(sum(hits) / len(hits), 3) for group, hits in sorted(by_group.items())}


def options(examples: list[Example], configs: list[ModelConfig]) -> list[dict[str, Any]]:
    results = []
    for config in configs:
        began = time.monotonic()
        grouped = cross_validated(examples, config, "group")
        stratified = cross_validated(examples, config, "stratified")
        g, s = scores(examples, grouped), scores(examples, stratified)
        groups = per_group(examples, grouped)
        result = {
            "config": config.describe(),
            "group_accuracy": round(g.accuracy, 3),
            "group_high_as_low": g.high_as_low,
            "stratified_accuracy": round(s.accuracy, 3),
            "stratified_high_as_low": s.high_as_low,
            "worst_group": min(groups.items(), key=lambda kv: kv[1]),
            "per_group": groups,
        }
        print(
            f"{config.describe():<40} grouped {g.accuracy:.3f} (H→L {g.high_as_low})"
            f"  stratified {s.accuracy:.3f} (H→L {s.high_as_low})"
            f"  worst {result['worst_group']}  [{time.monotonic() - began:.0f} s]",
            flush=True,
        )
        results.append(result)
    return results


def floor(examples: list[Example], config: ModelConfig) -> dict[str, Any]:
    predicted = cross_validated(examples, config, "group")
    rules = PriorityRules.default()
    by_rules = [infer_priority(e.subject, e.body, {}, rules).priority for e in examples]
    new = [i for i, e in enumerate(examples) if e.group.startswith("train-")]
    out: dict[str, Any] = {
        "rules alone": _floor_figures(examples, by_rules, new),
        "per_group": per_group(examples, predicted),
    }
    for level in Floor:
        floored = [
            Priority(level.value)
            if level is not Floor.NONE and p is Priority.LOW and r is Priority.HIGH
            else p
            for p, r in zip(predicted, by_rules, strict=True)
        ]
        out[f"model, floor {level.value}"] = _floor_figures(examples, floored, new)
    for name, figures in out.items():
        if name != "per_group":
            print(f"  {name:<22} {figures}", flush=True)
    return out


def guard(examples: list[Example], config: ModelConfig) -> dict[str, Any]:
    """Grouped CV of ``decide_priority`` at each Low-guard level (one model per fold)."""
    labels = [e.label.value for e in examples]
    folds = GroupKFold(min(GROUP_FOLDS, len({e.group for e in examples}))).split(
        labels, labels, [e.group for e in examples]
    )
    rules = PriorityRules.default()
    tested = [
        (export(fit([examples[i] for i in train_at], config)), test_at)
        for train_at, test_at in folds
    ]
    out: dict[str, Any] = {}
    for level in GUARD_LEVELS:
        decided: list[Priority] = [Priority.MEDIUM] * len(examples)
        for model, test_at in tested:
            for i in test_at:
                e = examples[i]
                decided[i] = decide_priority(
                    e.subject, e.body, {}, rules, model=model, high_share_for_medium=level
                ).priority
        name = "never" if level > 1 else f"{level:g}"
        out[name] = scores(examples, decided).to_json()
        print(
            f"  guard {name:<6} accuracy {out[name]['accuracy']}  H→L {out[name]['high_as_low']}",
            flush=True,
        )
    return out


def _floor_figures(
    examples: list[Example], decided: list[Priority], new: list[int]
) -> dict[str, Any]:
    every = scores(examples, decided)
    fresh = scores([examples[i] for i in new], [decided[i] for i in new])
    return {
        "accuracy": round(every.accuracy, 3),
        "high_as_low": every.high_as_low,
        "new_data_accuracy": round(fresh.accuracy, 3),
        "new_data_high_as_low": fresh.high_as_low,
    }


def curve(
    base: list[Example], site: list[Example], config: ModelConfig, seeds: int
) -> dict[str, Any]:
    """Accuracy on a site's held-out mail against the number of its corrections."""
    results: dict[str, Any] = {"site": len(site), "test": SITE_TEST, "seeds": seeds}
    rules = PriorityRules.default()
    draws = [np.random.default_rng(seed).permutation(len(site)) for seed in range(seeds)]
    tests = [[site[i] for i in order[:SITE_TEST]] for order in draws]
    by_rules = [
        scores(test, [infer_priority(e.subject, e.body, {}, rules).priority for e in test])
        for test in tests
    ]
    results["rules"] = _mean(by_rules)
    print(f"  rules alone: {results['rules']}", flush=True)
    for weight in SITE_WEIGHTS:
        row: dict[int, dict[str, float]] = {}
        for n in (n for n in SITE_SIZES if n <= len(site) - SITE_TEST):
            if n == 0 and weight != SITE_WEIGHTS[0]:
                row[n] = results[f"weight {SITE_WEIGHTS[0]:g}"][0]
                continue
            runs = [
                _site_run(base, [site[i] for i in order[SITE_TEST:][:n]], test, config, weight)
                for order, test in zip(draws, tests, strict=True)
            ]
            row[n] = _mean(runs)
            print(f"  weight {weight:g}, {n:>3} site examples: {row[n]}", flush=True)
        results[f"weight {weight:g}"] = row
    return results


def _mean(runs: list[Evaluation]) -> dict[str, float]:
    return {
        "accuracy": round(float(np.mean([r.accuracy for r in runs])), 3),
        "high_as_low": round(float(np.mean([r.high_as_low for r in runs])), 1),
    }


def _site_run(
    base: list[Example],
    added: list[Example],
    test: list[Example],
    config: ModelConfig,
    weight: float,
) -> Evaluation:
    """Train on the shipped data plus ``added``; score the daemon's decision on ``test``."""
    model = export(fit(base + [e.weighted(weight) for e in added], config))
    rules = PriorityRules.default()
    decided = [decide_priority(e.subject, e.body, {}, rules, model=model).priority for e in test]
    return scores(test, decided)


def shared() -> dict[str, Any] | None:
    if not SHARED_EXAMPLES.exists():
        print("  shared examples absent: skipped")
        return None
    examples = load_examples([SHARED_EXAMPLES])
    model, rules = PriorityModel.shipped(), PriorityRules.default()
    out = {}
    for level in Floor:
        decided = [
            decide_priority(e.subject, e.body, {}, rules, model=model, floor=level).priority
            for e in examples
        ]
        out[f"model, floor {level.value}"] = scores(examples, decided).to_json()
    by_rules = [infer_priority(e.subject, e.body, {}, rules).priority for e in examples]
    out["rules alone"] = scores(examples, by_rules).to_json()
    for name, figures in out.items():
        print(f"  {name:<22} accuracy {figures['accuracy']}  H→L {figures['high_as_low']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--section",
        action="append",
        choices=["options", *OPTIONS, "floor", "guard", "curve", "shared"],
    )
    parser.add_argument("--seeds", type=int, default=3, help="draws per point of the curve")
    parser.add_argument("--quick", action="store_true", help="word-only model, few folds")
    args = parser.parse_args()
    sections = args.section or ["floor", "guard", "curve", "shared"]
    examples = load_examples(DEFAULT_DATA)
    config = DEFAULT_CONFIG
    if args.quick:
        examples = [e for e in examples if e.group.endswith(("-de", "-bi", "fresh"))]
        config, args.seeds = QUICK, 1
    result: dict[str, Any] = {"benchmark": "priority_model", "config": config.describe()}
    for section in sections:
        print(f"# {section}", flush=True)
        if section.endswith("options"):
            everything = [config for configs in OPTIONS.values() for config in configs]
            chosen = everything if section == "options" else OPTIONS[section]
            result[section] = options(examples, [QUICK] if args.quick else chosen)
        elif section == "floor":
            result["floor"] = floor(examples, config)
        elif section == "guard":
            result["guard"] = guard(examples, config)
        elif section == "curve":
            site = load_examples([SITE_DATA])
            if args.quick:
                site = site[:140]
            result["curve"] = curve(examples, site, config, args.seeds)
        else:
            result["shared"] = shared()
    result["machine"] = machine()
    sys.stdout.flush()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
