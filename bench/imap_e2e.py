"""IMAP end to end: the mix moved into a real Dovecot folder until processed, vs stdlib parse."""

from __future__ import annotations

import email
import os
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from email import policy
from pathlib import Path
from typing import TYPE_CHECKING

from bench.databases import Databases, databases
from bench.mix import generate, stats
from bench.report import Figure, emit, median, mix_parser, parse_mix_args
from bench.sites import make_site, start_daemon, status_json, wait_settled
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


def daemon_run(dbs: Databases, workdir: Path, server: DovecotServer, mix: list[bytes]) -> float:
    """Seconds from the mix landing in the watched folder until every message is processed."""
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
        done = wait_settled(url, len(mix))
        print(f"  status: {status_json(site)}")
    finally:
        daemon.stop(timeout=300)
    return done - began


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
    rates, parse_rates = [], []
    with (
        databases(args.db) as dbs,
        dovecot() as server,
        tempfile.TemporaryDirectory(prefix="bench-imap-") as tmp,
    ):
        for _ in range(args.runs):
            parse_rates.append(parse_rate(mix))
            rates.append(len(mix) / daemon_run(dbs, Path(tmp), server, mix))
    figure = Figure(
        name="IMAP end to end",
        ours=median(rates),
        baseline=median(parse_rates),
        unit="msgs/s",
        ratio=median(rates) / median(parse_rates),
        runs=args.runs,
        target=">= 0.9",
        ours_label=f"mail2case ({args.db}, Dovecot to case + ack queued)",
        baseline_label="stdlib parse, one core",
    )
    emit("imap_e2e", [figure], db=args.db, mix=stats(mix), run_id=uuid.uuid4().hex[:8])


if __name__ == "__main__":
    main()
