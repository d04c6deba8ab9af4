"""The process stage in a child process: passes, new settings, a child that dies, closing."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from mail2case import app
from mail2case.config.settings import load_config
from mail2case.service.metrics import Metrics
from mail2case.service.process_child import ChildDiedError, ProcessChild, child_process_pass
from storage import inbound
from storage.models import Case

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ingest.process import Processor
    from mail2case.config.settings import Config

WAIT = 20.0  # seconds: every wait here is bounded


def _raw(n: int, sender: str = "alice@customer.example") -> bytes:
    return (
        f"From: {sender}\r\nTo: support@example.com\r\nSubject: Help {n}\r\n"
        f"Message-ID: <m{n}@customer.example>\r\n\r\nThe export button does nothing.\r\n"
    ).encode()


@dataclasses.dataclass
class Setup:
    """What each test works with."""

    config: Config
    processor: Processor  # the daemon's own: never runs, holds the settings
    child: ProcessChild

    def add(self, n: int, sender: str = "alice@customer.example") -> None:
        """Commit message ``n`` from ``sender``, as SMTP would."""
        with self.processor.sessions.begin() as s:
            inbound.add_inbound(
                s, raw=_raw(n, sender), source="smtp", now=datetime.now(UTC), mail_from=sender
            )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """A migrated SQLite database, its config, and a child (closed afterwards)."""
    path = tmp_path / "mail2case.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "cases.db"}"\n'
        f'[support]\naddress = "support@example.com"\n'
        f'[outgoing]\nmaildir = "{tmp_path / "out"}"\n'
        "[processing]\nseparate_process = true\n",
        encoding="utf-8",
    )
    config = load_config(path)
    engine, sessions = app.open_database(config)
    child = ProcessChild(config)
    try:
        yield Setup(config, app.build_processor(config, sessions), child)
    finally:
        child.close()
        engine.dispose()


def test_a_pass_runs_in_the_child_and_is_counted_here(setup: Setup) -> None:
    """The child settles the pending messages; outcomes and timings reach the metrics."""
    setup.add(1)
    setup.add(2)
    metrics = Metrics()
    run_once = child_process_pass(setup.child, setup.processor, metrics)
    assert run_once(datetime.now(UTC)) == 2
    assert run_once(datetime.now(UTC)) == 0
    assert metrics.processed.labels(outcome="processed")._value.get() == 2
    with setup.processor.sessions() as s:
        assert inbound.pending_ids(s, 10) == []
    assert setup.child.starts == 1


def test_new_settings_reach_the_child_with_the_next_pass(setup: Setup) -> None:
    """SIGHUP replaces the daemon's processor settings; the child runs with them next."""
    metrics = Metrics()
    run_once = child_process_pass(setup.child, setup.processor, metrics)
    assert run_once(datetime.now(UTC)) == 0  # the child is up, with the old settings
    premier = dataclasses.replace(
        setup.config,
        customers=load_config_with_acme(setup.config).customers,
    )
    setup.processor.settings = app.process_settings(premier, app.team_calendar(premier))
    setup.add(3, sender="bob@acme.example")
    assert run_once(datetime.now(UTC)) == 1
    with setup.processor.sessions() as s:
        assert s.scalars(select(Case.plan)).all() == ["premier"]


def load_config_with_acme(config: Config) -> Config:
    """``config``'s file plus a premier customer, Acme."""
    original = Path(config.source)
    extra = original.with_name("acme.toml")
    extra.write_text(
        original.read_text(encoding="utf-8")
        + '[[customers]]\nname = "Acme"\ndomains = ["acme.example"]\nplan = "premier"\n',
        encoding="utf-8",
    )
    return load_config(extra)


def test_a_child_that_dies_mid_pass_fails_the_pass_and_the_next_starts_afresh(
    setup: Setup,
) -> None:
    """Killed while it waits for the write lock: the pass raises; the next one settles the mail."""
    run_once = child_process_pass(setup.child, setup.processor, Metrics())
    assert run_once(datetime.now(UTC)) == 0
    setup.add(4)
    failures: list[BaseException] = []

    def one_pass() -> None:
        try:
            run_once(datetime.now(UTC))
        except ChildDiedError as exc:
            failures.append(exc)

    with setup.processor.sessions.begin() as s:  # the write lock, held here
        inbound.add_inbound(s, raw=_raw(5), source="smtp", now=datetime.now(UTC))
        thread = threading.Thread(target=one_pass)
        thread.start()
        time.sleep(0.5)  # the child has read the pending ids and waits to write
        proc = setup.child._proc
        assert proc is not None
        proc.kill()
        thread.join(WAIT)
    assert len(failures) == 1
    assert run_once(datetime.now(UTC)) == 2
    assert setup.child.starts == 2


def test_close_ends_the_child(setup: Setup) -> None:
    """close() ends the child and waits for it; a later pass would start another."""
    child_process_pass(setup.child, setup.processor, Metrics())(datetime.now(UTC))
    proc = setup.child._proc
    assert proc is not None
    setup.child.close()
    assert proc.poll() is not None
    assert setup.child._proc is None
