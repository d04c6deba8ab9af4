"""The ``priority`` command group: ``train`` and its scikit-learn are loaded only when it runs."""

from __future__ import annotations

import subprocess
import sys

from mail2case.cli.main import build_parser


def test_no_command_but_train_imports_scikit_learn() -> None:
    """Building the parser (every command does) leaves scikit-learn unimported."""
    probe = "import sys; import mail2case.cli.main; print('sklearn' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


def test_priority_train_still_parses_to_its_command() -> None:
    """``priority train --json --force`` parses, and dispatches to the training command."""
    args = build_parser().parse_args(["priority", "train", "--json", "--force"])
    assert (args.json, args.force, args.actor) == (True, True, None)
    assert args.func.__name__ == "_train"
