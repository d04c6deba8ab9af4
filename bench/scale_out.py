"""Scale-out on one PostgreSQL database: throughput with 1, 2 and 3 daemons sharing it.

Each instance is a ``mail2case run`` of its own (its SMTP listener, its process child,
its analysis worker, its sender), all on the same durable PostgreSQL database, as a
site would run them on several hosts. Two loads, in the same run:

- *SMTP*: the mix over 16 connections spread across the instances' listeners (session
  i to instance i mod n), timed from the first connect until every row is settled;
- *backlog*: the mix committed as received rows in one transaction while the instances
  idle, timed until every row is settled: the process stage alone, claimed by the
  instances with ``FOR UPDATE SKIP LOCKED``.

Each figure compares n instances with one instance in the same run (the ratio is the
scaling); every run also checks that each message was settled once and each new case
acknowledged once, whichever instance took it.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from bench.databases import Databases, databases
from bench.mix import generate, stats
from bench.processing_cpu import commit_mix
from bench.report import compared, emit, median, mix_parser, parse_mix_args
from bench.sites import make_site, start_daemon, wait_settled
from bench.smtp_clients import send_all
from storage.engine import make_engine, session_factory
from storage.models import Case, Outbox

if TYPE_CHECKING:
    from bench.report import Figure
    from tests.support.daemon import Daemon


# Idle instances look for new rows this often (the default is 1 s): a committed backlog
# is otherwise found up to a second late, a large share of a ten-second run.
_POLL = "[processing]\npoll_interval_seconds = 0.1\n"


def instances_run(
    dbs: Databases, workdir: Path, mix: list[bytes], count: int, *, backlog: bool
) -> float:
    """Messages per second with ``count`` instances on one fresh database."""
    url = dbs.fresh()
    daemons: list[Daemon] = []
    try:
        for _ in range(count):
            site = make_site(workdir / uuid.uuid4().hex[:8], url, extra=_POLL)
            daemons.append(start_daemon(site))
        if backlog:
            began = time.perf_counter()
            commit_mix(url, mix)
        else:
            began = send_all([d.site.smtp_port for d in daemons], mix, 16).began
        done = wait_settled(url, len(mix))
    finally:
        for daemon in daemons:
            daemon.stop(timeout=300)
    _check_once_each(url, len(mix))
    return len(mix) / (done - began)


def _check_once_each(url: str, messages: int) -> None:
    """Every case acknowledged once (unique keys hold across instances), no more cases than mail."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            opened = s.scalar(select(func.count()).select_from(Case)) or 0
            acks = s.scalar(select(func.count()).where(Outbox.kind == "ack")) or 0
    finally:
        engine.dispose()
    if not 0 < opened <= messages or acks != opened:
        raise SystemExit(f"{opened} cases and {acks} acknowledgements for {messages} messages")


def main() -> None:
    parser = mix_parser(__doc__)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 3])
    parser.set_defaults(db="postgresql")
    args = parse_mix_args(parser, quick_messages=24)
    if args.quick:
        args.instances = [2]
    if args.db != "postgresql":
        raise SystemExit("several instances share a PostgreSQL database only (--db postgresql)")
    counts = sorted(set(args.instances) | {1})
    mix = generate(args.messages)
    rates: Rates = {}
    with databases(args.db) as dbs, tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for _ in range(args.runs):
            # Alternated within a run, so that the machine's load falls on every side.
            for load in ("smtp", "backlog"):
                for n in counts:
                    rate = instances_run(dbs, Path(tmp), mix, n, backlog=load == "backlog")
                    rates.setdefault((load, n), []).append(rate)
    emit(
        "scale_out",
        _figures(args.runs, counts, rates),
        db=args.db,
        rates={f"{load} x{n}": [round(r, 1) for r in v] for (load, n), v in rates.items()},
        medians={f"{load} x{n}": round(median(v), 1) for (load, n), v in rates.items()},
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        mix=stats(mix),
    )


Rates = dict[tuple[str, int], list[float]]


def _figures(runs: int, counts: list[int], rates: Rates) -> list[Figure]:
    """n instances against one, for each load (one instance alone when only 1 was asked)."""
    labels = {"smtp": "SMTP, 16 connections", "backlog": "backlog of received rows"}
    return [
        compared(
            f"{labels[load]}: {n} instance(s) vs 1",
            rates[load, n],
            rates[load, 1],
            unit="msgs/s",
            runs=runs,
            target="",
            ours_label=f"{n} instance(s)",
            baseline_label="1 instance",
        )
        for load in ("smtp", "backlog")
        for n in counts
        if n > 1 or len(counts) == 1
    ]


if __name__ == "__main__":
    main()
