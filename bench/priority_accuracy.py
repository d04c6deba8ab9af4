"""Measure priority inference against labelled examples (accuracy, P/R, confusion)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ingest.priority.inference import PriorityRules, infer_priority
from sla.policy import Priority

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXAMPLES = REPO_ROOT.parent / "shared" / "priority" / "examples.jsonl"
LEVELS = [p.value for p in Priority]
# Rows whose number is a multiple of 5 are held out: rules are developed on the rest.
HOLDOUT_MODULUS = 5


@dataclass
class Result:
    """Confusion counts (label, inferred) and claim agreement for a set of examples."""

    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    claims: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def add(self, other: Result) -> None:
        """Fold ``other`` into this result (for the combined figures)."""
        self.confusion.update(other.confusion)
        self.claims.update(other.claims)
        self.total += other.total


def in_split(example_id: str, split: str) -> bool:
    number = int(example_id.rsplit("-", 1)[-1])
    is_holdout = number % HOLDOUT_MODULUS == 0
    return split == "all" or (split == "holdout") == is_holdout


def load(path: Path, split: str) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [row for row in rows if in_split(row["id"], split)]


def evaluate(rows: list[dict[str, str]], *, verbose: bool) -> Result:
    rules = PriorityRules.default()
    result = Result(total=len(rows))
    for row in rows:
        decision = infer_priority(row["subject"], row["body"], {}, rules)
        expected, got = row["label"].lower(), decision.priority.value
        result.confusion[expected, got] += 1
        claimed = row.get("customer_claimed", "").lower() or None
        found = decision.customer_priority.value if decision.customer_priority else None
        result.claims["agree" if claimed == found else "disagree"] += 1
        if verbose and expected != got:
            print(f"{row['id']} want {expected} got {got}: {decision.reason}")
    return result


def report(result: Result, title: str) -> None:
    confusion, total = result.confusion, result.total
    correct = sum(confusion[level, level] for level in LEVELS)
    print(f"{title}  examples: {total}")
    print(f"accuracy: {correct / total:.3f} ({correct}/{total})" if total else "accuracy: n/a")
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
    print(f"customer_claimed agreement: {result.claims['agree']}/{total}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("examples", nargs="*", type=Path, default=[DEFAULT_EXAMPLES])
    parser.add_argument("--split", choices=["dev", "holdout", "all"], default="dev")
    parser.add_argument("-v", "--verbose", action="store_true", help="list each miss")
    args = parser.parse_args(argv)
    missing = [path for path in args.examples if not path.exists()]
    if missing:
        print(f"no examples at {missing[0]}", file=sys.stderr)
        return 2
    combined = Result()
    for path in args.examples:
        result = evaluate(load(path, args.split), verbose=args.verbose)
        report(result, f"file: {path.name}  split: {args.split}")
        combined.add(result)
        print()
    if len(args.examples) > 1:
        report(combined, f"combined ({len(args.examples)} files)  split: {args.split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
