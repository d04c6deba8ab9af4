"""Processing CPU per message (Processor over committed rows, workers included) vs parse CPU."""

from __future__ import annotations

import email
import os
import time
from datetime import UTC, datetime
from email import policy

from bench.databases import databases
from bench.mix import generate, stats
from bench.report import compared, cpu_seconds, emit, median, mix_parser, parse_mix_args
from mail2case import app
from mail2case.config.settings import config_from_mapping
from mail2case.log_setup import configure_logging
from storage import inbound
from storage.engine import make_engine, session_factory
from storage.statuses import InboundStatus


def parse_cpu(mix: list[bytes]) -> float:
    """CPU seconds per message for the standard library's parse alone."""
    began = time.process_time()
    for raw in mix:
        email.message_from_bytes(raw, policy=policy.default)
    return (time.process_time() - began) / len(mix)


def commit_mix(url: str, mix: list[bytes]) -> None:
    """Commit the mix as received SMTP rows, as the listener would have (not measured)."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    with sessions.begin() as s:
        for raw in mix:
            inbound.add_inbound(
                s, raw=raw, source="smtp", now=now, mail_from="c@example.org", rcpt_to=["s@x"]
            )
    engine.dispose()


def process_cpu(url: str, mix: list[bytes]) -> tuple[float, float]:
    """CPU and wall seconds per message to process every committed row."""
    commit_mix(url, mix)
    config = config_from_mapping(
        {"database": {"url": url}, "support": {"address": "support@example.com"}}
    )
    engine, sessions = app.open_database(config)
    processor = app.build_processor(config, sessions)
    began, wall = cpu_seconds(), time.perf_counter()
    while processor.run_once(datetime.now(UTC)):
        pass
    cpu, wall = cpu_seconds() - began, time.perf_counter() - wall
    with sessions() as s:
        counts = inbound.status_counts(s)
    engine.dispose()
    processed = counts.get(InboundStatus.PROCESSED, 0) + counts.get(InboundStatus.DUPLICATE, 0)
    if processed != len(mix):
        raise SystemExit(f"not every message was processed: {counts}")
    return cpu / len(mix), wall / len(mix)


def main() -> None:
    args = parse_mix_args(mix_parser(__doc__))
    # The daemon logs one JSON line per message; so does the benchmark (to nowhere).
    configure_logging("info", "json", open(os.devnull, "w"))  # noqa: SIM115, PTH123 - for the whole run
    mix = generate(args.messages)
    ours, base, walls = [], [], []
    with databases(args.db) as dbs:
        for _ in range(args.runs):
            base.append(parse_cpu(mix))
            cpu, wall = process_cpu(dbs.fresh(), mix)
            ours.append(cpu)
            walls.append(wall)
    figure = compared(
        "processing CPU per message",
        ours,
        base,
        scale=1000,
        unit="ms",
        runs=args.runs,
        target="<= 2",  # issue 20 (issue 8 asked for 1.5)
        ours_label=f"Processor ({args.db})",
        baseline_label="stdlib parse",
        extra={"wall_ms_per_message": round(median(walls) * 1000, 3)},
    )
    emit("processing_cpu", [figure], db=args.db, mix=stats(mix))


if __name__ == "__main__":
    main()
