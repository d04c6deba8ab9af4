"""A throwaway PostgreSQL server on 127.0.0.1 and a database fixture for both backends."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import psycopg
import pytest

from storage.engine import make_engine
from storage.schema import upgrade
from tests.support.services import free_port, missing

if TYPE_CHECKING:
    from collections.abc import Iterator

HOST = "127.0.0.1"
USER = "postgres"
# The data is thrown away after the session: durability costs time and proves nothing here.
SPEED = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian keeps it off PATH)."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin/postgres") if p.parts[-3].isdigit()]
    if not found:
        return None
    return max(found, key=lambda p: int(p.parts[-3])).parent


def _as_postgres() -> dict[str, Any]:
    """Popen arguments that run a child as ``postgres`` when we are root (root is refused)."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam(USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


@dataclass
class PostgresServer:
    """``postgres`` in the foreground, data and socket in ``root``, TCP on 127.0.0.1:``port``."""

    bindir: Path
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # Passed as ``-c`` options at start; tests trade durability for speed.
    settings: ClassVar[tuple[str, ...]] = ("listen_addresses=127.0.0.1", *SPEED)

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.root / "server.log"

    @property
    def log(self) -> str:
        """The tail of the server's log, for failure messages."""
        path = self.log_path
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def init(self) -> None:
        """Create the cluster (trust auth for local use, no fsync of the new files)."""
        if os.geteuid() == 0:
            shutil.chown(self.root, USER, USER)
        initdb = (str(self.bindir / "initdb"), "-D", str(self.root / "data"), "-U", USER)
        done = subprocess.run(
            [
                *initdb,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            check=False,
            **_as_postgres(),
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.decode()}")

    def start(self) -> None:
        """Start on ``port`` in its own process group and wait until it accepts connections."""
        settings = [arg for s in self.settings for arg in ("-c", s)]
        server = (str(self.bindir / "postgres"), "-D", str(self.root / "data"))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*server, "-p", str(self.port), "-k", str(self.root), *settings],
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
                **_as_postgres(),
            )
        self._wait_ready()

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL of its process group if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)

    def url(self, name: str) -> str:
        """The SQLAlchemy URL of database ``name`` (psycopg 3 driver)."""
        return f"postgresql+psycopg://{USER}@{HOST}:{self.port}/{name}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit psycopg connection (CREATE DATABASE refuses a transaction)."""
        return psycopg.connect(
            host=HOST, port=self.port, user=USER, dbname=dbname, autocommit=True, connect_timeout=5
        )

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; returns its URL."""
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing any connection a test left open."""
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        for _ in range(int(READY_TIMEOUT / 0.02)):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited {self.proc.returncode}: {self.log}")
            try:
                self.connect().close()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            else:
                return
        self.stop()
        raise RuntimeError(f"postgres not ready in {READY_TIMEOUT}s: {self.log}")


def _start_server(
    bindir: Path, root: Path, kind: type[PostgresServer] = PostgresServer
) -> PostgresServer:
    """Init and start a server; a second port is tried if the first was taken meanwhile."""
    server = kind(bindir, root)
    server.init()
    try:
        server.start()
    except RuntimeError:
        server.port = free_port()
        server.start()
    return server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session; tests take a database each."""
    bindir = find_bindir()
    if bindir is None:
        missing("PostgreSQL server binaries", "apt-get install -y postgresql")
    with running_server(bindir, "pg-") as server:
        yield server


@contextmanager
def running_server(
    bindir: Path, prefix: str, kind: type[PostgresServer] = PostgresServer
) -> Iterator[PostgresServer]:
    """A server of ``kind`` in a fresh directory, stopped and removed afterwards."""
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700 and postgres could not enter it.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = _start_server(bindir, root, kind)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database (no schema yet), once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mail2case.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """A fresh database migrated to head, once on SQLite and once on PostgreSQL."""
    _migrate(empty_database_url)
    return empty_database_url


def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
