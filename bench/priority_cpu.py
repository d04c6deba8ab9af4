"""Priority CPU per message: the rules (infer_priority) vs the model path (decide_priority).

Same run, same messages: every labelled email in the repository, interleaved runs.
The model path is what the daemon would run: the shipped model, the rules' floor
where the model says Low, and the customer's claim.
"""

from __future__ import annotations

import argparse
import json
import time

from bench.report import compared, emit
from ingest.priority.decision import decide_priority
from ingest.priority.inference import PriorityRules, infer_priority
from ingest.priority.model import PriorityModel
from ingest.priority.training import DEFAULT_DATA


def load() -> list[tuple[str, str]]:
    rows = []
    for path in DEFAULT_DATA:
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append((row["subject"], row["body"]))
    return rows


def rules_cpu(rows: list[tuple[str, str]], rules: PriorityRules) -> float:
    began = time.process_time()
    for subject, body in rows:
        infer_priority(subject, body, {}, rules)
    return (time.process_time() - began) / len(rows)


def model_cpu(rows: list[tuple[str, str]], rules: PriorityRules, model: PriorityModel) -> float:
    began = time.process_time()
    for subject, body in rows:
        decide_priority(subject, body, {}, rules, model=model)
    return (time.process_time() - began) / len(rows)


def model_alone_cpu(rows: list[tuple[str, str]], model: PriorityModel) -> float:
    began = time.process_time()
    for subject, body in rows:
        model.predict(subject, body)
    return (time.process_time() - began) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="50 messages, one run (CI smoke)")
    args = parser.parse_args()
    rows = load()
    if args.quick:
        rows, args.runs = rows[:50], 1
    rules = PriorityRules.default()
    began = time.process_time()
    model = PriorityModel.shipped()
    load_seconds = time.process_time() - began
    for subject, body in rows:  # compile the rules and fill the model's word memo first
        infer_priority(subject, body, {}, rules)
        decide_priority(subject, body, {}, rules, model=model)
    ours, alone, base = [], [], []
    for _ in range(args.runs):
        base.append(rules_cpu(rows, rules))
        ours.append(model_cpu(rows, rules, model))
        alone.append(model_alone_cpu(rows, model))
    sides = [
        ("priority CPU per message", ours, "<= 1.0", "decide_priority (model + floor + claim)"),
        ("model alone per message", alone, "", "PriorityModel.predict"),
    ]
    rules_label = "infer_priority (rules)"
    figures = [
        compared(
            name,
            samples,
            base,
            scale=1000,
            unit="ms",
            runs=args.runs,
            target=target,
            ours_label=label,
            baseline_label=rules_label,
        )
        for name, samples, target, label in sides
    ]
    emit(
        "priority_cpu",
        figures,
        messages=len(rows),
        model=model.name,
        model_load_cpu_seconds=round(load_seconds, 3),
    )


if __name__ == "__main__":
    main()
