"""Benchmark reporting: machine info, medians, both sides, the ratio, and a JSON line."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass
class Figure:
    """One measured comparison: ours against its baseline, as a median of ``runs``."""

    name: str
    ours: float
    baseline: float
    unit: str
    ratio: float
    runs: int
    target: str
    ours_label: str = "mail2case"
    baseline_label: str = "baseline"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        """Whether the ratio meets the target (``>= x``, ``<= x``; ``ours < x``); None if none."""
        if self.target.startswith("ours < "):
            return self.ours < float(self.target.removeprefix("ours < "))
        op, _, value = self.target.partition(" ")
        if op == ">=":
            return self.ratio >= float(value)
        if op == "<=":
            return self.ratio <= float(value)
        if op == "<":
            return self.ratio < float(value)
        return None


def compared(
    name: str,
    ours: Sequence[float],
    baseline: Sequence[float],
    *,
    unit: str,
    runs: int,
    target: str,
    scale: float = 1.0,
    ours_label: str = "mail2case",
    baseline_label: str = "baseline",
    extra: dict[str, Any] | None = None,
) -> Figure:
    """Two sides' samples as a figure: each median (times ``scale``, in ``unit``), the ratio."""
    return Figure(
        name=name,
        ours=median(ours) * scale,
        baseline=median(baseline) * scale,
        unit=unit,
        ratio=median(ours) / median(baseline),
        runs=runs,
        target=target,
        ours_label=ours_label,
        baseline_label=baseline_label,
        extra=extra or {},
    )


def machine() -> dict[str, Any]:
    """What the figures were measured on; the load says how noisy it was."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "system": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def cpu_seconds() -> float:
    """CPU time of this process and its live children (a worker process counts too; Linux)."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # the child exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def descendants(pid: int) -> list[int]:
    """Process ids of the live children of ``pid``, their children, and so on (Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, task.read_text().split()):
            found += [child, *descendants(child)]
    return found


def median(values: Sequence[float]) -> float:
    """The median (the figure every benchmark reports)."""
    return statistics.median(values) if values else float("nan")


def emit(benchmark: str, figures: list[Figure], **context: Any) -> None:
    """Print each figure for a reader, then one JSON line with everything (the last line)."""
    info = machine()
    print(f"# {benchmark}  ({info['cpus']} cpus, {info['cpu']}, load {info['loadavg']})")
    for key, value in context.items():
        print(f"  {key}: {value}")
    for f in figures:
        verdict = {True: "met", False: "MISSED", None: ""}[f.met]
        print(
            f"  {f.name}: {f.ours_label} {f.ours:.4g} {f.unit} vs {f.baseline_label} "
            f"{f.baseline:.4g} {f.unit} -> ratio {f.ratio:.3f} "
            f"(target {f.target or 'none'}) {verdict}  [median of {f.runs}]"
        )
    line = {
        "benchmark": benchmark,
        "figures": [{**asdict(f), "met": f.met} for f in figures],
        "context": context,
        "machine": info,
    }
    sys.stdout.flush()
    print(json.dumps(line, default=str))


def mix_parser(description: str | None, *, runs: int = 3) -> argparse.ArgumentParser:
    """The options every benchmark over the message mix takes: --db, --messages, --runs, --quick."""
    parser = argparse.ArgumentParser(description=description)
    add_db_option(parser)
    parser.add_argument("--messages", type=int, default=1000)
    add_run_options(parser, runs=runs)
    return parser


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """--db: the database the benchmark runs on (a throwaway PostgreSQL, or SQLite)."""
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")


def add_run_options(parser: argparse.ArgumentParser, *, runs: int) -> None:
    """--runs (how many, for the median) and --quick (tiny sizes, one run)."""
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run (CI smoke)")


def parse_mix_args(parser: argparse.ArgumentParser, quick_messages: int = 20) -> argparse.Namespace:
    """Parsed options, shrunk to a few messages and one run with --quick."""
    args = parser.parse_args()
    if args.quick:
        args.messages, args.runs = min(args.messages, quick_messages), 1
    return args
