"""Each benchmark runs in --quick mode and prints its JSON result line (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.mix import generate, stats
from tests.support.dovecot import DOVECOT
from tests.support.postgres import find_bindir
from tests.support.services import REPO, missing

BENCHMARKS = [
    ("processing_cpu", ["--db", "sqlite"]),
    ("smtp_e2e", ["--db", "sqlite"]),
    ("scheduler", []),
    ("memory", []),
    ("import_rate", []),
    ("imap_e2e", []),
    ("processing_cpu", ["--db", "postgresql"]),
    ("smtp_e2e", ["--db", "postgresql"]),
    ("priority_cpu", []),
    ("board_queue", ["--db", "sqlite"]),
    ("board_queue", ["--db", "postgresql"]),
    ("scale_out", ["--db", "postgresql"]),
]


def _needs(name: str, args: list[str]) -> None:
    if "postgresql" in args and find_bindir() is None:
        missing("PostgreSQL server binaries", "apt-get install -y postgresql")
    if name == "imap_e2e" and not os.access(DOVECOT, os.X_OK):
        missing(str(DOVECOT), "apt-get install -y dovecot-imapd")


def _result_line(name: str, args: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--quick", *args],
        cwd=REPO,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    lines = done.stdout.decode().strip().splitlines()
    result: dict[str, object] = json.loads(lines[-1])
    return result


@pytest.mark.timeout(330)
@pytest.mark.parametrize(("name", "args"), BENCHMARKS, ids=[n + "".join(a) for n, a in BENCHMARKS])
def test_benchmark_prints_its_result_line(name: str, args: list[str]) -> None:
    """A quick run ends with one JSON line naming the benchmark, both sides and a ratio."""
    _needs(name, args)
    result = _result_line(name, args)
    assert result["benchmark"] == name
    figures = result["figures"]
    assert isinstance(figures, list)
    assert figures
    for figure in figures:
        assert {"ours", "baseline", "ratio", "runs", "unit"} <= set(figure)


@pytest.mark.timeout(330)
def test_priority_model_benchmark_prints_its_sections() -> None:
    """The model-choice benchmark runs quick and ends with the floor, curve and shared figures."""
    result = _result_line("priority_model", [])
    assert result["benchmark"] == "priority_model"
    floor, curve = result["floor"], result["curve"]
    assert isinstance(floor, dict)
    assert isinstance(curve, dict)
    assert {"rules alone", "model, floor none", "model, floor high"} <= set(floor)
    assert {"rules", "weight 1", "weight 3", "weight 10"} <= set(curve)
    assert "shared" in result


def test_mix_is_deterministic_and_has_the_issue_shape() -> None:
    """The same seed gives the same bytes; the mix holds attachments, charsets and replies."""
    mix = generate(200, seed=3)
    assert mix == generate(200, seed=3)
    shape = stats(mix)
    assert shape.with_attachment > 0
    assert shape.non_utf8 > 0
    assert shape.replies > 0
    assert shape.alternative > 0


def test_bench_dir_is_importable_from_the_repo() -> None:
    """The benchmarks run as modules from the repository root (python -m bench.NAME)."""
    assert (Path(REPO) / "bench" / "README.md").exists()
