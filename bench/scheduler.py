"""One SLA scheduler pass with 1k vs 100k open cases (a handful due): indexed, so the same cost."""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, update

from bench.databases import databases
from bench.report import add_db_option, add_run_options, compared, emit
from mail2case import app
from mail2case.config.settings import config_from_mapping
from mail2case.log_setup import configure_logging
from storage.engine import make_engine, session_factory
from storage.models import Case, Outbox, SlaClock

DUE = 5  # clocks breached and as many reminders due at each pass
CHUNK = 5000


def populate(url: str, open_cases: int, now: datetime) -> None:
    """Insert ``open_cases`` open cases, each with a running first-response clock (bulk)."""
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        for start in range(0, open_cases, CHUNK):
            ids = range(start + 1, min(start + CHUNK, open_cases) + 1)
            s.execute(insert(Case), [_case(i, now) for i in ids])
            s.execute(insert(SlaClock), [_clock(i, now) for i in ids])
    engine.dispose()


def _case(i: int, now: datetime) -> dict[str, Any]:
    return {
        "id": i,
        "ref": 1000 + i,
        "subject": f"Case {i}",
        "status": "open",
        "priority": "medium",
        "plan": "premier",
        "customer_address": f"c{i}@client.example",
        "opened_at": now - timedelta(hours=1),
        "updated_at": now - timedelta(hours=1),
        "participants": [],
    }


def _clock(i: int, now: datetime) -> dict[str, Any]:
    # A handful is due (breached, or to be reminded); the rest lie hours to weeks ahead.
    ahead = timedelta(minutes=30 + (i * 7919) % 40000)
    due = now - timedelta(minutes=1) if i <= DUE else now + ahead
    remind = now - timedelta(minutes=1) if DUE < i <= 2 * DUE else due - timedelta(minutes=20)
    return {
        "id": i,
        "case_id": i,
        "kind": "first",
        "state": "running",
        "started_at": now - timedelta(hours=1),
        "due_at": due,
        "remind_at": remind,
    }


def reset(url: str, now: datetime) -> None:
    """Make the handful due again, so every timed pass does the same work."""
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        s.execute(delete(Outbox))
        s.execute(
            update(SlaClock)
            .where(SlaClock.id <= 2 * DUE)
            .values(breached_at=None, reminded_at=None, remind_at=now - timedelta(minutes=1))
        )
    engine.dispose()


def timed_pass(url: str, now: datetime) -> float:
    """Seconds of one scheduler pass (its transaction and durable commit included)."""
    config = config_from_mapping(
        {"database": {"url": url}, "agents": {"team_address": "team@example.com"}}
    )
    engine, sessions = app.open_database(config, upgrade=False)
    scheduler = app.build_scheduler(config, sessions)
    began = time.perf_counter()
    result = scheduler.pass_once(now)
    seconds = time.perf_counter() - began
    engine.dispose()
    if len(result.notices) != 2 * DUE:
        raise SystemExit(f"expected {2 * DUE} notices, got {len(result.notices)}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_db_option(parser)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    add_run_options(parser, runs=7)
    args = parser.parse_args()
    if args.quick:
        args.small, args.large, args.runs = 20, 200, 1
    configure_logging("info", "json", open(os.devnull, "w"))  # noqa: SIM115, PTH123 - whole run
    now = datetime.now(UTC)
    small: list[float] = []
    large: list[float] = []
    with databases(args.db) as dbs:
        urls = {args.small: dbs.fresh(), args.large: dbs.fresh()}
        for size, url in urls.items():
            populate(url, size, now)
        for _ in range(args.runs):
            for size, times in ((args.small, small), (args.large, large)):
                reset(urls[size], now)
                times.append(timed_pass(urls[size], now))
    figure = compared(
        f"scheduler pass, {args.large} vs {args.small} open cases ({2 * DUE} due)",
        large,
        small,
        scale=1000,
        unit="ms",
        runs=args.runs,
        target="<= 2",
        ours_label=f"{args.large} open",
        baseline_label=f"{args.small} open",
    )
    emit("scheduler", [figure], db=args.db)


if __name__ == "__main__":
    main()
