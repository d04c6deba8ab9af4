"""Measure priority inference against the labelled examples (accuracy, P/R, confusion)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from ingest.priority import PriorityRules, infer_priority
from sla.policy import Priority

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXAMPLES = REPO_ROOT.parent / "shared" / "priority" / "examples.jsonl"
LEVELS = [p.value for p in Priority]
# Rows whose number is a multiple of 5 are held out: rules are developed on the rest.
HOLDOUT_MODULUS = 5


def in_split(example_id: str, split: str) -> bool:
    number = int(example_id.rsplit("-", 1)[-1])
    is_holdout = number % HOLDOUT_MODULUS == 0
    return split == "all" or (split == "holdout") == is_holdout


def load(path: Path, split: str) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [row for row in rows if in_split(row["id"], split)]


def evaluate(rows: list[dict[str, str]], *, verbose: bool) -> dict[str, object]:
    rules = PriorityRules.default()
    confusion: Counter[tuple[str, str]] = Counter()
    claims = Counter[str]()
    for row in rows:
        decision = infer_priority(row["subject"], row["body"], {}, rules)
        expected, got = row["label"].lower(), decision.priority.value
        confusion[expected, got] += 1
        claimed = row.get("customer_claimed", "").lower() or None
        found = decision.customer_priority.value if decision.customer_priority else None
        claims["agree" if claimed == found else "disagree"] += 1
        if verbose and expected != got:
            print(f"{row['id']} want {expected} got {got}: {decision.reason}")
    return {"confusion": confusion, "claims": claims, "total": len(rows)}


def report(result: dict[str, object], split: str) -> None:
    confusion: Counter[tuple[str, str]] = result["confusion"]  # type: ignore[assignment]
    claims: Counter[str] = result["claims"]  # type: ignore[assignment]
    total = int(result["total"])  # type: ignore[call-overload]
    correct = sum(confusion[level, level] for level in LEVELS)
    print(f"split: {split}  examples: {total}")
    print(f"accuracy: {correct / total:.3f} ({correct}/{total})")
    for level in LEVELS:
        predicted = sum(confusion[e, level] for e in LEVELS)
        actual = sum(confusion[level, g] for g in LEVELS)
        precision = confusion[level, level] / predicted if predicted else 0.0
        recall = confusion[level, level] / actual if actual else 0.0
        print(f"  {level:<6} precision {precision:.3f}  recall {recall:.3f}  (n={actual})")
    print("confusion (rows: label, columns: inferred):")
    print("          " + "".join(f"{g:>8}" for g in LEVELS))
    for expected in LEVELS:
        print(f"  {expected:<8}" + "".join(f"{confusion[expected, g]:>8}" for g in LEVELS))
    print(f"high classified low: {confusion['high', 'low']}")
    print(f"customer_claimed agreement: {claims['agree']}/{total}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("examples", nargs="?", type=Path, default=DEFAULT_EXAMPLES)
    parser.add_argument("--split", choices=["dev", "holdout", "all"], default="dev")
    parser.add_argument("-v", "--verbose", action="store_true", help="list each miss")
    args = parser.parse_args(argv)
    if not args.examples.exists():
        print(f"no examples at {args.examples}", file=sys.stderr)
        return 2
    report(evaluate(load(args.examples, args.split), verbose=args.verbose), args.split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
