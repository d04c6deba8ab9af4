"""The real daemon for the end-to-end benchmarks: a site directory, its config, its progress."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING

from storage import inbound
from storage.engine import make_engine, session_factory
from storage.statuses import SETTLED
from tests.support.daemon import Daemon, Site

if TYPE_CHECKING:
    from pathlib import Path


def make_site(root: Path, url: str, *, smtp: bool = True, extra: str = "") -> Site:
    """A site whose daemon takes the mix: 25 MB messages, the given database."""
    root.mkdir(parents=True, exist_ok=True)
    site = Site(root)
    site.config.write_text(
        f"""
[database]
url = "{url}"
[smtp]
enabled = {str(smtp).lower()}
host = "127.0.0.1"
port = {site.smtp_port}
max_message_size = 26214400
[support]
address = "support@example.com"
name = "Example Support"
[outgoing]
maildir = "{site.maildir}"
[logging]
format = "json"
{extra}
""",
        encoding="utf-8",
    )
    return site


def settled(url: str) -> int:
    """How many inbound rows processing has settled (what ``status`` counts as processed)."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            counts = inbound.status_counts(s)
    finally:
        engine.dispose()
    return sum(counts.get(k, 0) for k in SETTLED)


def wait_settled(url: str, count: int, timeout: float = 1800.0) -> float:
    """Poll until ``count`` rows are settled; returns perf_counter at that moment."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with sessions() as s:
                counts = inbound.status_counts(s)
            if sum(counts.get(k, 0) for k in SETTLED) >= count:
                return time.perf_counter()
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise SystemExit(f"not settled in {timeout}s: {counts}")


def status_json(site: Site) -> str:
    """``mail2case status --json`` once at the end, as an operator would read it."""
    done = site.cli("status", "--json")
    return " ".join(done.stdout.decode().split())


def start_daemon(site: Site) -> Daemon:
    """``mail2case run`` in a child process, up and listening (or idle when SMTP is off)."""
    daemon = Daemon(site)
    with daemon.log.open("ab") as out:
        daemon.proc = subprocess.Popen(
            [sys.executable, "-m", "mail2case.cli", "run", "--config", str(site.config)],
            cwd=site.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _wait_started(daemon)
    return daemon


def _wait_started(daemon: Daemon, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.proc is not None  # noqa: S101 - set just above
        if daemon.proc.poll() is not None:
            raise SystemExit(f"daemon exited: {daemon.log.read_text()[-2000:]}")
        if b'"daemon.started"' in daemon.log.read_bytes():
            return
        time.sleep(0.05)
    raise SystemExit(f"daemon did not start: {daemon.log.read_text()[-2000:]}")
