"""IMAP end to end: the mix moved into a real Dovecot folder until processed, vs stdlib parse.

Besides the settled figure: when every message was received (committed to ``inbound``) in
that same run, the IMAP source alone (one poller pass, no processing) on a fresh folder, and
the single-process reference pipeline (``bench.reference_pipeline``) on the same messages,
landed the same way. Both sides' results are checked against the mix's threads.
"""

from __future__ import annotations

import email
import os
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from bench.databases import Databases, databases
from bench.mix import generate, stats
from bench.reference_pipeline import Mailbox, ReferencePipeline
from bench.report import Figure, emit, median, mix_parser, parse_mix_args
from bench.sites import make_site, start_daemon, status_json
from bench.threads import Expected, Verdict, check, expected, mail2case_placed
from ingest.sources.imap import MailboxPoller
from ingest.sources.imap_settings import ImapSettings
from mail2case.log_setup import configure_logging
from mail2case.service.imap import mailbox_factory
from storage import inbound
from storage.engine import make_engine, session_factory
from storage.statuses import SETTLED
from tests.support.dovecot import USERS, DovecotServer, _certificates

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def dovecot() -> Iterator[DovecotServer]:
    """The test suite's throwaway Dovecot, started for this benchmark."""
    root = Path(tempfile.mkdtemp(prefix="bench-dovecot-"))
    os.chmod(root, 0o755)  # noqa: PTH101, S103 - the service user (nobody) must enter it
    (root / "mail").mkdir()
    server = DovecotServer(root=root, ca_file=_certificates(root))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def parse_rate(mix: list[bytes]) -> float:
    """Messages per second the standard library parses on one core."""
    began = time.perf_counter()
    for raw in mix:
        email.message_from_bytes(raw, policy=policy.default)
    return len(mix) / (time.perf_counter() - began)


def stage(server: DovecotServer, mix: list[bytes]) -> str:
    """APPEND the mix to a fresh staging folder (not timed); returns its name."""
    folder = server.new_folder()
    with server.client() as c:
        for raw in mix:
            c.append(folder, raw)
    return folder


def imap_config(server: DovecotServer, folder: str) -> str:
    """The ``[[imap]]`` table of a daemon reading ``folder`` from ``server``."""
    return f"""
[[imap]]
host = "{server.host}"
port = {server.port}
tls = "none"
username = "alice"
password = "{USERS["alice"]}"
folder = "{folder}"
processed_folder = "{folder}-done"
"""


class Timings(NamedTuple):
    """Seconds from the mix landing in the watched folder until each stage held all of it."""

    received: float  # every message committed to inbound (the IMAP source's part)
    settled: float  # every message processed (case + ack queued)
    url: str  # the run's database, to check what it holds


def daemon_run(dbs: Databases, workdir: Path, server: DovecotServer, mix: list[bytes]) -> Timings:
    """Seconds from the mix landing in the watched folder until it is received, and settled."""
    staging, inbox = stage(server, mix), server.new_folder()
    with server.client() as c:
        c.create_folder(f"{inbox}-done")
    url = dbs.fresh()
    site = make_site(workdir / inbox, url, smtp=False, extra=imap_config(server, inbox))
    daemon = start_daemon(site)
    try:
        _wait_idle(daemon.log)
        with server.client() as c:
            c.select_folder(staging)
            began = time.perf_counter()
            c.move(c.search("ALL"), inbox)  # one command: the whole mix arrives at once
        received, settled = _wait_stages(url, len(mix))
        print(f"  status: {status_json(site)}")
    finally:
        daemon.stop(timeout=300)
    return Timings(received - began, settled - began, url)


def mail2case_verdict(url: str, want: Expected) -> Verdict:
    """Cases opened, replies threaded and acks queued by the run that used ``url``."""
    placed, acks = mail2case_placed(url)
    return check("mail2case", want, placed, acks)


def reference_run(workdir: Path, server: DovecotServer, mix: list[bytes]) -> tuple[float, Verdict]:
    """Seconds the reference pipeline takes from the same landing until all is stored; its result.

    Landed like the daemon's run: the pipeline waits in IDLE on an empty folder and one
    ``UID MOVE`` puts the whole mix there.
    """
    staging, inbox = stage(server, mix), server.new_folder()
    with server.client() as c:
        c.create_folder(f"{inbox}-done")
    mailbox = Mailbox(server.host, server.port, "alice", USERS["alice"], inbox)
    pipeline = ReferencePipeline(mailbox, workdir / f"{inbox}.db")
    try:
        pipeline.watch()
        with server.client() as c:
            c.select_folder(staging)
            began = time.perf_counter()
            c.move(c.search("ALL"), inbox)
        pipeline.drain(len(mix))
        took = time.perf_counter() - began
        placed, acks = pipeline.placed()
    finally:
        pipeline.close()
    return took, check("reference", expected(mix), placed, acks)


def _wait_stages(url: str, count: int, timeout: float = 1800.0) -> tuple[float, float]:
    """Poll every 50 ms; perf_counter when ``count`` rows were stored, and when all settled."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    deadline = time.monotonic() + timeout
    received: float | None = None
    counts: dict[str, int] = {}
    try:
        while time.monotonic() < deadline:
            with sessions() as s:
                counts = inbound.status_counts(s)
            now = time.perf_counter()
            if received is None and sum(counts.values()) >= count:
                received = now
            if sum(counts.get(k, 0) for k in SETTLED) >= count:
                return received or now, now
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise SystemExit(f"not settled in {timeout}s: {counts}")


def source_run(dbs: Databases, workdir: Path, server: DovecotServer, mix: list[bytes]) -> float:
    """Seconds one poller pass takes to commit (and move) the whole mix; nothing processes it."""
    inbox = stage(server, mix)
    settings = ImapSettings(
        host=server.host,
        port=server.port,
        tls="none",
        username="alice",
        password=USERS["alice"],
        folder=inbox,
        processed_folder=f"{inbox}-done",
        max_message_size=26214400,
    )
    engine = make_engine(dbs.fresh())
    poller = MailboxPoller(
        settings, mailbox_factory(settings), session_factory(engine), lambda: None, "bench"
    )
    try:
        # JSON lines to a file, as the daemon writes them: one per message is part of the cost.
        with (workdir / f"{inbox}.log").open("w", encoding="utf-8") as log:
            configure_logging("info", "json", stream=log)
            began = time.perf_counter()
            handled = poller.run_once(datetime.now(UTC))
            took = time.perf_counter() - began
        with session_factory(engine)() as s:
            stored = sum(inbound.status_counts(s).values())
    finally:
        poller.close(release=True)
        engine.dispose()
    if handled != len(mix) or stored != len(mix):
        raise SystemExit(f"source pass handled {handled}, stored {stored} of {len(mix)}")
    return took


def _wait_idle(log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while b'"imap.connected"' not in log.read_bytes():
        if time.monotonic() > deadline:
            raise SystemExit(f"the daemon did not connect to Dovecot: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    time.sleep(0.5)  # past its first (empty) pass, waiting in IDLE


def main() -> None:
    args = parse_mix_args(mix_parser(__doc__))
    mix = generate(args.messages)
    want = expected(mix)
    rates, received_rates, source_rates, parse_rates = [], [], [], []
    reference_rates: list[float] = []
    verdicts: list[Verdict] = []
    with (
        databases(args.db) as dbs,
        dovecot() as server,
        tempfile.TemporaryDirectory(prefix="bench-imap-") as tmp,
    ):
        for _ in range(args.runs):
            parse_rates.append(parse_rate(mix))
            timings = daemon_run(dbs, Path(tmp), server, mix)
            rates.append(len(mix) / timings.settled)
            received_rates.append(len(mix) / timings.received)
            verdicts.append(mail2case_verdict(timings.url, want))
            took, verdict = reference_run(Path(tmp), server, mix)
            reference_rates.append(len(mix) / took)
            verdicts.append(verdict)
            source_rates.append(len(mix) / source_run(dbs, Path(tmp), server, mix))
    parse = median(parse_rates)
    figures = [
        Figure(
            name="IMAP end to end",
            ours=median(rates),
            baseline=parse,
            unit="msgs/s",
            ratio=median(rates) / parse,
            runs=args.runs,
            target=">= 0.9",
            ours_label=f"mail2case ({args.db}, Dovecot to case + ack queued)",
            baseline_label="stdlib parse, one core",
        ),
        Figure(
            name="IMAP vs reference pipeline",
            ours=median(rates),
            baseline=median(reference_rates),
            unit="msgs/s",
            ratio=median(rates) / median(reference_rates),
            runs=args.runs,
            target=">= 0.6",
            ours_label=f"mail2case ({args.db}, Dovecot to case + ack queued)",
            baseline_label="reference pipeline (fetch, parse, SQLite FULL, thread, ack row)",
            extra={
                "ours_runs": rates,
                "reference_runs": reference_rates,
                "verdicts": [asdict(v) | {"ok": v.ok} for v in verdicts],
            },
        ),
        Figure(
            name="IMAP received (same run)",
            ours=median(received_rates),
            baseline=parse,
            unit="msgs/s",
            ratio=median(received_rates) / parse,
            runs=args.runs,
            target="",
            ours_label=f"mail2case ({args.db}, Dovecot to inbound row committed)",
            baseline_label="stdlib parse, one core",
        ),
        Figure(
            name="IMAP source alone",
            ours=median(source_rates),
            baseline=parse,
            unit="msgs/s",
            ratio=median(source_rates) / parse,
            runs=args.runs,
            target="",
            ours_label=f"one poller pass ({args.db}, fetch, commit, move; no processing)",
            baseline_label="stdlib parse, one core",
        ),
    ]
    for verdict in verdicts:
        print(f"  {verdict.line()}")
    emit("imap_e2e", figures, db=args.db, mix=stats(mix), run_id=uuid.uuid4().hex[:8])
    if not all(v.ok for v in verdicts):
        raise SystemExit("a side did not thread the mix as its headers say (see above)")


if __name__ == "__main__":
    main()
