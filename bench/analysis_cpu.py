"""Analysis CPU per message (parse, classify, prioritise; no database) vs stdlib parse CPU."""

from __future__ import annotations

import email
import time
from email import policy

from bench.mix import generate, stats
from bench.report import compared, emit, mix_parser, parse_mix_args
from ingest.analysis.core import AnalysisSettings, analyse
from mail2case import app
from mail2case.config.settings import config_from_mapping


def parse_cpu(mix: list[bytes]) -> float:
    """CPU seconds per message for the standard library's parse alone."""
    began = time.process_time()
    for raw in mix:
        email.message_from_bytes(raw, policy=policy.default)
    return (time.process_time() - began) / len(mix)


def analysis_cpu(mix: list[bytes], settings: AnalysisSettings) -> float:
    """CPU seconds per message for ``analyse``, as the daemon's worker runs it."""
    began = time.process_time()
    for raw in mix:
        analyse(raw, settings, null_sender=False)
    return (time.process_time() - began) / len(mix)


def main() -> None:
    args = parse_mix_args(mix_parser(__doc__))
    config = config_from_mapping({"support": {"address": "support@example.com"}})
    settings = app.process_settings(config, app.team_calendar(config)).analysis
    mix = generate(args.messages)
    analyse(mix[0], settings, null_sender=False)  # compile the rules outside the timing
    ours, base = [], []
    for _ in range(args.runs):
        base.append(parse_cpu(mix))
        ours.append(analysis_cpu(mix, settings))
    figure = compared(
        "analysis CPU per message",
        ours,
        base,
        scale=1000,
        unit="ms",
        runs=args.runs,
        target="<= 1.5",
        ours_label="analyse()",
        baseline_label="stdlib parse",
    )
    emit("analysis_cpu", [figure], mix=stats(mix))


if __name__ == "__main__":
    main()
