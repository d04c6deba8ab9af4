"""Databases for the benchmarks: a SQLite file, or a durable PostgreSQL server started here."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

from storage.engine import make_engine
from storage.schema import upgrade
from tests.support.postgres import PostgresServer, find_bindir, running_server

if TYPE_CHECKING:
    from collections.abc import Iterator

# Unlike the test fixture (fsync off), the benchmark keeps PostgreSQL durable:
# a 250 must follow a commit that survives power loss.
DURABLE = ("listen_addresses=127.0.0.1", "fsync=on", "synchronous_commit=on")


class DurablePostgres(PostgresServer):
    """The test suite's throwaway server, started with fsync and synchronous commit on."""

    settings = DURABLE


@contextmanager
def postgres_server() -> Iterator[DurablePostgres]:
    """A durable PostgreSQL server for the duration of a benchmark."""
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    with running_server(bindir, "bench-pg-", DurablePostgres) as server:
        yield cast("DurablePostgres", server)  # running_server built it from this class


class Databases:
    """Fresh, migrated databases of one kind, one per run."""

    def __init__(self, kind: str, workdir: Path, server: DurablePostgres | None = None) -> None:
        self.kind = kind
        self.workdir = workdir
        self.server = server

    def fresh(self) -> str:
        """The URL of a new, empty database at the current schema."""
        name = f"b_{uuid.uuid4().hex[:12]}"
        if self.server is not None:
            url = self.server.create_database(name)
        else:
            url = f"sqlite:///{self.workdir / name}.db"
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        return url


@contextmanager
def databases(kind: str) -> Iterator[Databases]:
    """Databases of ``kind`` ("sqlite" or "postgresql") in a temporary directory."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-db-"))
    try:
        if kind == "postgresql":
            with postgres_server() as server:
                yield Databases(kind, workdir, server)
        else:
            yield Databases(kind, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
