"""Run ``mail2case`` as a real process: the daemon over real sockets, and CLI calls."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.support.services import free_port

if TYPE_CHECKING:
    from pathlib import Path


@dataclass
class Site:
    """A working directory with a config file, as an operator would have."""

    root: Path
    smtp_port: int = field(default_factory=free_port)
    extra: str = ""
    support: str = "support@example.com"

    @property
    def config(self) -> Path:
        """The config file path."""
        return self.root / "mail2case.toml"

    @property
    def maildir(self) -> Path:
        """The outgoing maildir."""
        return self.root / "outgoing"

    def write(self) -> None:
        """Write the config file."""
        self.config.write_text(
            f"""
[database]
url = "sqlite:///{self.root / "cases.db"}"
[smtp]
host = "127.0.0.1"
port = {self.smtp_port}
max_message_size = 200000
[support]
address = "{self.support}"
name = "Example Support"
[outgoing]
maildir = "{self.maildir}"
poll_interval_seconds = 0.2
[processing]
poll_interval_seconds = 0.2
[logging]
format = "json"
{self.extra}
""",
            encoding="utf-8",
        )

    def cli(
        self,
        *args: str,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run one CLI command against this site."""
        cmd = [sys.executable, "-m", "mail2case.cli", *args, "--config", str(self.config)]
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, cwd=self.root, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
        return proc

    def cli_json(self, *args: str, timeout: float = 60) -> Any:
        """Run a CLI command with --json and decode its output."""
        return json.loads(self.cli(*args, "--json", timeout=timeout).stdout)

    def outgoing_messages(self) -> list[bytes]:
        """Every message delivered into the outgoing maildir."""
        new = self.maildir / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []


class Daemon:
    """``mail2case run`` in a child process, stopped with SIGTERM."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.log = site.root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> Daemon:
        """Start and wait until the SMTP port answers."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mail2case.cli", "run", "--config", str(self.site.config)],
                cwd=self.site.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"daemon exited {self.proc.returncode}: {self.log.read_text()[-3000:]}"
                )
            try:
                with smtplib.SMTP("127.0.0.1", self.site.smtp_port, timeout=2) as s:
                    s.noop()
            except OSError:
                time.sleep(0.05)
            else:
                return self
        raise RuntimeError(f"daemon did not listen in {timeout}s: {self.log.read_text()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        events = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
