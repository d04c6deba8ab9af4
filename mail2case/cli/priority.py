"""``mail2case priority``: score the priority model on labelled mail, and retrain it."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.priority.decision import Floor, decide_priority
from ingest.priority.evaluation import Evaluation
from ingest.priority.inference import PriorityRules
from ingest.priority.model import PriorityModel
from mail2case import app
from sla.policy import Priority

if TYPE_CHECKING:
    import argparse

    from mail2case.config.settings import Config

EX_OK, EX_USAGE = 0, 2


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``priority evaluate FILE [--json] [--model PATH] [--floor LEVEL]`` and ``train``."""
    priority = sub.add_parser("priority", parents=[common], help="the priority model")
    actions = priority.add_subparsers(dest="priority_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "evaluate",
        parents=[common],
        help="score the model on labelled JSON lines (subject, body, label)",
    )
    p.add_argument("file", type=Path, metavar="FILE.jsonl")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument(
        "--model",
        type=Path,
        metavar="PATH",
        help="a model file (default: the daemon's: [priority] model, installed, or shipped)",
    )
    p.add_argument(
        "--floor",
        choices=[f.value for f in Floor],
        help="what the rules' High does to the model's Low (default: [priority] floor)",
    )
    p.set_defaults(func=evaluate)
    _add_train_parser(actions, common)


def _add_train_parser(actions: Any, common: argparse.ArgumentParser) -> None:
    """Register ``priority train [--json] [--force] [--actor ADDR]``."""
    p = actions.add_parser(
        "train",
        parents=[common],
        help="retrain on the shipped data plus the team's labelled cases; install if not worse",
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument(
        "--force", action="store_true", help="install the new model even if it scores lower"
    )
    p.add_argument("--actor", metavar="ADDR", help="who trains, for the record (default: login)")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace, config: Config) -> int:
    """``priority train``, whose module is loaded only when the command runs.

    It brings scikit-learn, most of a second to import; every other command (an
    import of years of mail, an MTA's ``ingest`` once per delivered mail) goes without.
    """
    training = importlib.import_module("mail2case.cli.priority_train")
    code: int = training.train(args, config)
    return code


def evaluate(args: argparse.Namespace, config: Config) -> int:
    """Decide each labelled email as the daemon would and print the scores."""
    try:
        rows = _labelled(args.file)
        model = (
            PriorityModel.from_bytes(args.model.read_bytes())
            if args.model
            else app.current_priority_model(config).model
        )
    except (OSError, ValueError) as exc:
        print(f"mail2case: priority evaluate: {exc}", file=sys.stderr)
        return EX_USAGE
    rules = PriorityRules.default()
    floor = Floor(args.floor) if args.floor else config.priority.floor
    pairs = [
        (label, decide_priority(subject, body, {}, rules, model=model, floor=floor).priority)
        for subject, body, label in rows
    ]
    scores = Evaluation.of(pairs)
    if args.json:
        out = {"file": str(args.file), "model": model.name, "floor": floor.value}
        print(json.dumps(out | scores.to_json()))
    else:
        print(f"file: {args.file}  model: {model.name}  floor: {floor.value}")
        print("\n".join(scores.lines()))
    return EX_OK


def _labelled(path: Path) -> list[tuple[str, str, Priority]]:
    """``(subject, body, label)`` per JSON line; blank lines are skipped.

    Raises:
        ValueError: a line that is not a labelled email, with its number.
    """
    rows = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append((str(row["subject"]), str(row["body"]), Priority.parse(str(row["label"]))))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: not a labelled email ({exc})") from None
    return rows
