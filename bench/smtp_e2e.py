"""SMTP end to end: 16 connections into the real daemon until all is processed, vs a null server."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from bench.databases import Databases, databases
from bench.mix import generate, stats
from bench.report import compared, emit, median, mix_parser, parse_mix_args
from bench.sites import make_site, start_daemon, status_json, wait_settled
from bench.smtp_clients import Load, send_all
from tests.support.services import free_port

if TYPE_CHECKING:
    import argparse

    from bench.report import Figure


def null_run(mix: list[bytes], connections: int) -> Load:
    """The mix into a do-nothing aiosmtpd server in its own process."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.smtp_clients", str(port)], stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None  # noqa: S101 - a pipe was asked for
        server.stdout.readline()  # "ready"
        return send_all(port, mix, connections)
    finally:
        server.terminate()
        server.wait(10)


def daemon_run(
    dbs: Databases, workdir: Path, mix: list[bytes], connections: int, extra: str = ""
) -> tuple[Load, float, str]:
    """The mix into ``mail2case run``; seconds from first connect until all is processed."""
    url = dbs.fresh()
    site = make_site(workdir / uuid.uuid4().hex[:8], url, extra=extra)
    daemon = start_daemon(site)
    try:
        load = send_all(site.smtp_port, mix, connections)
        done = wait_settled(url, len(mix))
        status = status_json(site)
    finally:
        daemon.stop(timeout=300)
    return load, done - load.began, status


def main() -> None:
    parser = mix_parser(__doc__)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="the process stage in the daemon's own process (separate_process = false)",
    )
    args = parse_mix_args(parser, quick_messages=24)
    extra = "[processing]\nseparate_process = false\n" if args.in_process else ""
    if args.quick:
        args.connections = 4
    mix = generate(args.messages)
    null_rates, rates, p50s, p99s, null_p99s, deferred = [], [], [], [], [], []
    status = ""
    with databases(args.db) as dbs, tempfile.TemporaryDirectory(prefix="bench-smtp-") as tmp:
        for _ in range(args.runs):
            null = null_run(mix, args.connections)
            null_rates.append(len(mix) / null.seconds)
            null_p99s.append(null.percentile(0.99))
            load, seconds, status = daemon_run(dbs, Path(tmp), mix, args.connections, extra)
            rates.append(len(mix) / seconds)
            p50s.append(load.percentile(0.5))
            p99s.append(load.percentile(0.99))
            deferred.append(load.deferred)
    emit(
        "smtp_e2e",
        _figures(args, rates, null_rates, p99s, null_p99s),
        db=args.db,
        connections=args.connections,
        separate_process=not args.in_process,
        p50_ms=round(median(p50s) * 1000, 2),
        deferred_451=deferred,
        status=status,
        mix=stats(mix),
    )


def _figures(
    args: argparse.Namespace,
    rates: list[float],
    null_rates: list[float],
    p99s: list[float],
    null_p99s: list[float],
) -> list[Figure]:
    return [
        compared(
            f"SMTP end to end, {args.connections} connections",
            rates,
            null_rates,
            unit="msgs/s",
            runs=args.runs,
            target=">= 0.5",
            ours_label=f"mail2case ({args.db}, received to case + ack queued)",
            baseline_label="do-nothing aiosmtpd",
        ),
        compared(
            f"p99 latency DATA to 250, {args.connections} connections",
            p99s,
            null_p99s,
            scale=1000,
            unit="ms",
            runs=args.runs,
            target="ours < 100",
            ours_label="mail2case",
            baseline_label="do-nothing aiosmtpd",
        ),
    ]


if __name__ == "__main__":
    main()
