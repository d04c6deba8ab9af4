"""The board's queue page over 10,000 open cases, against the same query done raw.

*Ours*: ``GET /`` of a signed-in agent over real HTTP on 127.0.0.1 (the board served
as the daemon serves it: uvicorn on an event loop): the first 500 cases in queue order
and the count of all; then ``GET /?rows=all``, every open case rendered as a row.
Beside the open cases lie 40,000 closed ones with their met clocks, as on a live desk.
*Baseline*: the page's query (``storage.board.queue_statement``, same limit) compiled to
SQL and run on the driver's own cursor, rows fetched and nothing else. The query plan is printed
(SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN``) with the indexes it uses.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import tempfile
import time
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, text

from bench.databases import databases
from bench.report import add_db_option, add_run_options, compared, emit
from mail2case import app
from mail2case.config.settings import config_from_mapping
from mail2case.log_setup import configure_logging
from mail2case.web.pages import QUEUE_LIMIT, QUEUE_PAGE
from mail2case.web.site import make_signin
from storage.board import QueueFilter, queue_statement
from storage.models import Case, SlaClock
from tests.support.board import AGENT, Client, redeem, served

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mail2case.config.settings import Config

CHUNK = 5000
# The page's two sizes: its default, and ?rows=all (mail2case.web.pages).
PAGES = ((QUEUE_PAGE, "/"), (QUEUE_LIMIT, "/?rows=all"))
PRIORITIES = ("high", "medium", "low")
PLANS = ("premier", "standard")
INDEX_NAME = re.compile(r"\b(ix_\w+|\w+_pkey)\b")


def populate(engine: Engine, open_cases: int, closed_cases: int, now: datetime) -> None:
    """Open cases of mixed priority and plan with a running clock; the closed history after.

    The history is what makes the indexes matter: a live desk has many more closed cases
    (and met clocks) than open ones.
    """
    rng = random.Random(19)
    total = open_cases + closed_cases
    with engine.begin() as conn:
        for start in range(0, total, CHUNK):
            ids = range(start + 1, min(start + CHUNK, total) + 1)
            rows = [_case(i, now, rng, is_open=i <= open_cases) for i in ids]
            conn.execute(insert(Case), rows)
            conn.execute(insert(SlaClock), [_clock(r, now, rng) for r in rows])
    with engine.begin() as conn:  # the planner's statistics, as a live database has them
        conn.execute(text("ANALYZE"))


def _case(i: int, now: datetime, rng: random.Random, *, is_open: bool) -> dict[str, Any]:
    opened = now - timedelta(minutes=rng.randrange(1, 60 * 24 * (30 if is_open else 700)))
    status = rng.choice(("open", "open", "open", "pending")) if is_open else "closed"
    return {
        "id": i,
        "ref": 1000 + i,
        "subject": f"Case {i}: something is not working as it should",
        "status": status,
        "priority": rng.choice(PRIORITIES),
        "plan": rng.choice(PLANS),
        "customer_address": f"c{i % 700}@client{i % 50}.example",
        "opened_at": opened,
        "updated_at": opened,
        "participants": [],
    }


def _clock(case: dict[str, Any], now: datetime, rng: random.Random) -> dict[str, Any]:
    is_open = case["status"] != "closed"
    due = (now if is_open else case["opened_at"]) + timedelta(minutes=rng.randrange(-600, 6000))
    return {
        "id": case["id"],
        "case_id": case["id"],
        "kind": "first",
        "state": "running" if is_open else "met",
        "ended_at": None if is_open else due - timedelta(minutes=5),
        "started_at": case["opened_at"],
        "due_at": due,
        "remind_at": due - timedelta(minutes=30),
    }


def raw_sql(engine: Engine, limit: int) -> str:
    """The queue page's query as the SQL text the database receives (literals inlined)."""
    stmt = queue_statement(QueueFilter(), limit)
    return str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))


def raw_query(engine: Engine, sql: str) -> tuple[float, int]:
    """Seconds to run ``sql`` on the driver's cursor and fetch every row; the row count."""
    conn = engine.raw_connection()
    try:
        began = time.perf_counter()
        cursor = conn.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall()
        seconds = time.perf_counter() - began
        cursor.close()
    finally:
        conn.close()
    return seconds, len(rows)


def query_plan(engine: Engine, sql: str) -> list[str]:
    """The database's plan for ``sql``, one line per step."""
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.execute(text(explain + sql)).all()
    return [" ".join(str(v) for v in row) for row in rows]


def board_config(url: str, workdir: Path) -> Config:
    """A configuration with one agent and the board, its key in ``workdir``."""
    return config_from_mapping(
        {
            "database": {"url": url},
            "agents": {"addresses": [AGENT]},
            "web": {"enabled": True, "session_secret_file": str(workdir / "web.key")},
        }
    )


def signed_in(config: Config, base: str) -> Client:
    """A client of the board at ``base``, signed in as the agent."""
    engine, sessions = app.open_database(config, upgrade=False)
    with sessions.begin() as s:
        link = make_signin(config, sessions).issue(s, AGENT, datetime.now(UTC))
    engine.dispose()
    client = Client(base)
    redeem(client, link.url)
    return client


def page_seconds(client: Client, path: str, expected_rows: int) -> float:
    """Seconds of one ``GET path``, the whole page read; checks that every row is on it."""
    began = time.perf_counter()
    reply = client.get(path)
    seconds = time.perf_counter() - began
    rows = reply.text.count("<tr data-ref=")
    if reply.status != HTTPStatus.OK or rows != expected_rows:
        raise SystemExit(f"queue page: status {reply.status}, {rows} rows, {expected_rows} wanted")
    return seconds


def run(args: argparse.Namespace, workdir: Path) -> None:
    """Populate, explain, then time each page size and its raw query alternately."""
    now = datetime.now(UTC)
    times: dict[int, tuple[list[float], list[float]]] = {n: ([], []) for n, _ in PAGES}
    with databases(args.db) as dbs:
        config = board_config(dbs.fresh(), workdir)
        engine, _ = app.open_database(config, upgrade=False)
        populate(engine, args.cases, args.closed, now)
        plan = query_plan(engine, raw_sql(engine, QUEUE_PAGE))
        with served(config) as base:
            client = signed_in(config, base)
            for _ in range(args.runs):
                for limit, path in PAGES:
                    seconds, count = raw_query(engine, raw_sql(engine, limit))
                    times[limit][1].append(seconds)
                    times[limit][0].append(page_seconds(client, path, count))
        engine.dispose()
    print("query plan:\n  " + "\n  ".join(plan))
    used = sorted({m for line in plan for m in INDEX_NAME.findall(line)})
    figures = [
        compared(
            f"queue page {path}, {min(limit, args.cases)} of {args.cases} open cases ({args.db})",
            page,
            raw,
            scale=1000,
            unit="ms",
            runs=args.runs,
            target="ours < 1000",
            ours_label=f"GET {path} (HTTP, rendered)",
            baseline_label="the query, raw cursor",
            extra={"indexes_used": used, "plan": plan},
        )
        for (limit, path), (page, raw) in zip(PAGES, times.values(), strict=True)
    ]
    emit("board_queue", figures, db=args.db, cases=args.cases, closed=args.closed)


def main() -> None:
    """Command line: --db, --cases, --runs, --quick."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_db_option(parser)
    parser.add_argument("--cases", type=int, default=10_000, help="open cases")
    parser.add_argument("--closed", type=int, default=40_000, help="closed cases (history)")
    add_run_options(parser, runs=7)
    args = parser.parse_args()
    if args.quick:
        args.cases, args.closed, args.runs = 50, 100, 1
    with (
        Path(os.devnull).open("w", encoding="utf-8") as sink,
        tempfile.TemporaryDirectory(prefix="bench-board-") as workdir,
    ):
        configure_logging("warning", "json", sink)
        run(args, Path(workdir))


if __name__ == "__main__":
    main()
