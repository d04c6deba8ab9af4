"""Poison messages: a per-message time and memory bound, quarantine, and the queue goes on."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update

from ingest.analysis.sandbox import InProcess, Limits, Sandbox
from mail2case import app
from mail2case.config.settings import config_from_mapping
from storage import inbound
from storage.models import Inbound
from tests.faults.poison_targets import misbehaving

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session, sessionmaker

    from ingest.analysis.core import Analysis
    from ingest.analysis.sandbox import AnalyseFn
    from ingest.process import Processor

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MAX_PASSES = 10


def mail(subject: str, *, marker: str = "", body: str = "Hello, it is broken.") -> bytes:
    """A customer's message, with an optional X-Poison marker for the test worker."""
    msg = EmailMessage()
    msg["From"] = "alice@customer.example"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash(subject))}@customer.example>"
    if marker:
        msg["X-Poison"] = marker
    msg.set_content(body)
    return msg.as_bytes()


def processor_with(
    sessions: sessionmaker[Session], limits: Limits, target: AnalyseFn = misbehaving
) -> Processor:
    """A processor whose analysis runs in a worker under ``limits`` (max_attempts 3)."""
    config = config_from_mapping({"support": {"address": "support@example.com"}})
    proc = app.build_processor(config, sessions)
    proc.analyser = Sandbox(proc.settings.analysis, limits, target=target)
    return proc


def store(sessions: sessionmaker[Session], *raws: bytes) -> list[int]:
    """Commit raw messages as SMTP would; returns their ids."""
    with sessions.begin() as s:
        return [
            inbound.add_inbound(s, raw=r, source="smtp", now=NOW, mail_from="a@b").id for r in raws
        ]


def drain(proc: Processor) -> None:
    """Run the stage until nothing is pending (bounded number of passes)."""
    for _ in range(MAX_PASSES):
        with proc.sessions() as s:
            if not inbound.pending_ids(s, 1):
                return
        proc.run_once(NOW)
    raise AssertionError("still pending after the bounded number of passes")


def rows(sessions: sessionmaker[Session]) -> dict[int, tuple[str, str | None, int]]:
    """Status, reason and attempts of every inbound row."""
    with sessions() as s:
        return {r.id: (r.status, r.reason, r.attempts) for r in s.scalars(select(Inbound))}


@pytest.mark.timeout(120)
def test_spinning_message_is_quarantined_and_the_rest_processed(
    sessions: sessionmaker[Session],
) -> None:
    """A message whose analysis spins is stopped at the deadline three times, then quarantined."""
    proc = processor_with(sessions, Limits(timeout=timedelta(seconds=0.5), memory_mb=256))
    ids = store(sessions, mail("before"), mail("spins", marker="spin"), mail("after"))
    started = time.monotonic()
    drain(proc)
    elapsed = time.monotonic() - started
    proc.analyser.close()
    found = rows(sessions)
    assert found[ids[1]] == ("quarantined", "poison: exceeded 0.5 s", 3)
    assert found[ids[0]][0] == found[ids[2]][0] == "processed"
    assert elapsed < 30  # three deadlines and restarts, never the 60 s the spin would take


@pytest.mark.timeout(120)
def test_memory_hog_is_quarantined_with_the_memory_bound(sessions: sessionmaker[Session]) -> None:
    """A message whose analysis allocates without end is stopped by the worker's memory cap."""
    proc = processor_with(sessions, Limits(timeout=timedelta(seconds=20), memory_mb=128))
    ids = store(sessions, mail("hog", marker="alloc"), mail("next"))
    drain(proc)
    proc.analyser.close()
    found = rows(sessions)
    assert found[ids[0]] == ("quarantined", "poison: exceeded 128 MiB", 3)
    assert found[ids[1]][0] == "processed"


@pytest.mark.timeout(120)
def test_crashing_message_is_quarantined_after_three_crashes(
    sessions: sessionmaker[Session],
) -> None:
    """A message that kills the worker is retried, then quarantined; the worker is restarted."""
    proc = processor_with(sessions, Limits(timeout=timedelta(seconds=20), memory_mb=256))
    ids = store(sessions, mail("crash", marker="crash"), mail("next"))
    drain(proc)
    assert isinstance(proc.analyser, Sandbox)
    restarts = proc.analyser.restarts
    proc.analyser.close()
    found = rows(sessions)
    assert found[ids[0]] == ("quarantined", "poison: crashed the worker 3 times", 3)
    assert found[ids[1]][0] == "processed"
    assert restarts >= 3


@pytest.mark.timeout(120)
def test_real_oversized_attachment_trips_the_memory_bound(sessions: sessionmaker[Session]) -> None:
    """A genuine message whose decoding needs more than the cap is quarantined, no hook needed."""
    proc = processor_with(sessions, Limits(timeout=timedelta(seconds=60), memory_mb=48))
    big = EmailMessage()
    big["From"] = "bob@customer.example"
    big["To"] = "support@example.com"
    big["Subject"] = "logs"
    big.set_content("See attached.")
    big.add_attachment(b"\x00" * (40 * 1024 * 1024), maintype="application", subtype="octet-stream")
    ids = store(sessions, big.as_bytes(), mail("small"))
    drain(proc)
    proc.analyser.close()
    found = rows(sessions)
    assert found[ids[0]] == ("quarantined", "poison: exceeded 48 MiB", 3)
    assert found[ids[1]][0] == "processed"


def test_attempts_left_by_a_dead_daemon_quarantine_the_row(sessions: sessionmaker[Session]) -> None:
    """A row whose attempts were counted but never settled (the daemon died) is quarantined."""
    config = config_from_mapping({"support": {"address": "support@example.com"}})
    proc = app.build_processor(config, sessions)
    assert isinstance(proc.analyser, InProcess)
    ids = store(sessions, mail("died thrice"), mail("fine"))
    with sessions.begin() as s:
        s.execute(update(Inbound).where(Inbound.id == ids[0]).values(attempts=3))
    drain(proc)
    found = rows(sessions)
    assert found[ids[0]] == ("quarantined", "poison: crashed the worker 3 times", 3)
    assert found[ids[1]] == ("processed", None, 1)


def test_attempt_is_committed_before_the_analysis_runs(sessions: sessionmaker[Session]) -> None:
    """The attempt counter is already committed while the analysis of the message runs."""
    config = config_from_mapping({"support": {"address": "support@example.com"}})
    proc = app.build_processor(config, sessions)
    ids = store(sessions, mail("watched"))
    seen: list[int] = []
    real = proc.analyser.analyse

    def spy(raw: bytes, *, null_sender: bool) -> Analysis:
        with sessions() as s:
            seen.append(s.get_one(Inbound, ids[0]).attempts)
        return real(raw, null_sender=null_sender)

    proc.analyser.analyse = spy  # type: ignore[method-assign]
    drain(proc)
    assert seen == [1]
    assert rows(sessions)[ids[0]][0] == "processed"


def test_requeue_gives_a_quarantined_poison_message_fresh_attempts(
    sessions: sessionmaker[Session],
) -> None:
    """Reprocessing a quarantined message starts its attempt count again."""
    ids = store(sessions, mail("again"))
    with sessions.begin() as s:
        s.execute(
            update(Inbound)
            .where(Inbound.id == ids[0])
            .values(status="quarantined", attempts=3, reason="poison: exceeded 30 s")
        )
    with sessions.begin() as s:
        assert inbound.requeue(s, ids[0])
    assert rows(sessions)[ids[0]] == ("received", None, 0)


def test_worker_overhead_per_message_is_small(sessions: sessionmaker[Session]) -> None:
    """The bound costs a pipe round trip per message: generous ceiling, figures in the report."""
    proc = processor_with(sessions, Limits(timeout=timedelta(seconds=20), memory_mb=512))
    raw = mail("overhead", body="A line of text about the problem.\n" * 40)
    local = InProcess(proc.settings.analysis)
    proc.analyser.analyse(raw, null_sender=False)  # the worker's start is not per message
    bounded = median_seconds(lambda: proc.analyser.analyse(raw, null_sender=False))
    direct = median_seconds(lambda: local.analyse(raw, null_sender=False))
    proc.analyser.close()
    assert bounded - direct < 0.05


def median_seconds(call: Callable[[], object], rounds: int = 60) -> float:
    """Median wall time of ``call`` over ``rounds`` runs."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return sorted(times)[rounds // 2]


def test_the_worker_is_started_before_any_message_is_claimed(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's start-up is no message's attempt: a kill during it counts against none."""
    proc = processor_with(sessions, Limits(timeout=timedelta(seconds=20), memory_mb=256))
    assert isinstance(proc.analyser, Sandbox)
    sandbox = proc.analyser
    running_at_claim: list[bool] = []
    real_claim = inbound.claim_attempts

    def spy(*args: object, **kwargs: object) -> object:
        running_at_claim.append(sandbox.restarts > 0)
        return real_claim(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(inbound, "claim_attempts", spy)
    store(sessions, mail("first"))
    drain(proc)
    sandbox.close()
    assert running_at_claim == [True]
