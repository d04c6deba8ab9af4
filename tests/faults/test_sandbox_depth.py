"""The analysis worker with two requests in flight: each reply and each failure is its request's.

Real worker processes (``ingest.analysis.sandbox.Sandbox``) with the test target of
``poison_targets``: it spins, sleeps, crashes or hoards memory on a marker header.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest

from ingest.analysis.sandbox import Limits, Sandbox
from ingest.errors import PoisonError
from mail2case import app
from mail2case.config.settings import config_from_mapping
from tests.faults.poison_targets import misbehaving
from tests.faults.test_poison import mail

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from concurrent.futures import Future

    from ingest.analysis.core import Analysis, AnalysisSettings

    MakeSandbox = Callable[[Limits], Sandbox]

pytestmark = pytest.mark.timeout(120)


def settings() -> AnalysisSettings:
    """The analysis settings of a plain site."""
    config = config_from_mapping({"support": {"address": "support@example.com"}})
    return app.process_settings(config, app.team_calendar(config)).analysis


@pytest.fixture
def make() -> Iterator[MakeSandbox]:
    """Sandboxes with the misbehaving target, closed after the test."""
    made: list[Sandbox] = []

    def factory(limits: Limits) -> Sandbox:
        sandbox = Sandbox(settings(), limits, target=misbehaving)
        made.append(sandbox)
        return sandbox

    yield factory
    for sandbox in made:
        sandbox.close()


def submit_all(sandbox: Sandbox, raws: list[bytes]) -> list[Future[Analysis]]:
    """Queue every message; nothing is sent yet."""
    return [sandbox.submit(raw, null_sender=False) for raw in raws]


def outcome(future: Future[Analysis]) -> str:
    """The subject analysed, or the failure's reason."""
    exc = future.exception()
    if isinstance(exc, PoisonError):
        return exc.reason
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"
    found = future.result()
    assert found.mail is not None
    return found.mail.subject


def run_all(sandbox: Sandbox, futures: list[Future[Analysis]]) -> list[str]:
    """Carry out the queue, in order, as the processor's pipeline thread does."""
    for future in futures:
        sandbox.run_until(future)
    return [outcome(f) for f in futures]


def with_attachment(subject: str, size: int) -> bytes:
    """A message with a ``size``-byte attachment: big in both directions once analysed."""
    msg = EmailMessage()
    msg["From"] = "bob@customer.example"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg.set_content("See attached.")
    msg.add_attachment(bytes(range(256)) * (size // 256), maintype="application", subtype="zip")
    return msg.as_bytes()


def test_the_worker_holds_two_requests_and_each_reply_is_its_own(make: MakeSandbox) -> None:
    """Eight messages: the next is always sent ahead, and the replies come back in order."""
    sandbox = make(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    subjects = [f"message {n}" for n in range(8)]
    assert run_all(sandbox, submit_all(sandbox, [mail(s) for s in subjects])) == subjects
    assert sandbox.most_in_flight == 2
    assert sandbox.restarts == 1


def test_big_requests_and_big_replies_at_once_never_wait_for_each_other(
    make: MakeSandbox,
) -> None:
    """Requests and replies of 3 MB, far past a socket's buffer: written without blocking.

    A blocking write of the next request would wait for the worker to read it, while the
    worker waits for its reply to the last one to be read: both forever.
    """
    sandbox = make(Limits(timeout=timedelta(seconds=60), memory_mb=512))
    subjects = [f"logs {n}" for n in range(4)]
    futures = submit_all(sandbox, [with_attachment(s, 3 * 1024 * 1024) for s in subjects])
    assert run_all(sandbox, futures) == subjects
    assert all(len(f.result().mail.attachments[0].data) >= 3 * 1024 * 1024 for f in futures)  # type: ignore[union-attr]
    assert sandbox.most_in_flight == 2


def test_a_timeout_is_the_oldest_request_s_and_the_next_is_sent_again(
    make: MakeSandbox,
) -> None:
    """The spinning message times out; the one sent behind it is analysed by a fresh worker."""
    sandbox = make(Limits(timeout=timedelta(seconds=0.5), memory_mb=256))
    raws = [mail("before"), mail("spins", marker="spin"), mail("behind"), mail("last")]
    assert run_all(sandbox, submit_all(sandbox, raws)) == [
        "before",
        "poison: exceeded 0.5 s",
        "behind",
        "last",
    ]
    assert sandbox.restarts == 2


def test_a_crash_is_the_oldest_request_s_and_the_next_is_sent_again(make: MakeSandbox) -> None:
    """The worker dies on the crashing message; the message behind it is not blamed."""
    sandbox = make(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    raws = [mail("crash", marker="crash"), mail("behind"), mail("crash again", marker="crash")]
    assert run_all(sandbox, submit_all(sandbox, raws)) == [
        "poison: crashed the worker",
        "behind",
        "poison: crashed the worker",
    ]
    assert sandbox.restarts == 2  # the first worker and the one after the first crash


def test_a_message_too_big_to_read_is_its_own_failure(make: MakeSandbox) -> None:
    """A request bigger than the memory cap fails as it is read: it is that request's.

    It is sent while the worker still works on the message before it, which is answered.
    """
    sandbox = make(Limits(timeout=timedelta(seconds=60), memory_mb=64))
    raws = [mail("small"), with_attachment("huge", 96 * 1024 * 1024), mail("after")]
    assert run_all(sandbox, submit_all(sandbox, raws)) == [
        "small",
        "poison: exceeded 64 MiB",
        "after",
    ]


def test_the_deadline_runs_from_when_the_worker_began_the_request(make: MakeSandbox) -> None:
    """Two 0.6 s analyses under a 1 s bound: the second's time starts at the first's reply.

    Counted from its sending (with the first), the second would take 1.2 s and time out.
    """
    sandbox = make(Limits(timeout=timedelta(seconds=1), memory_mb=256))
    raws = [mail("slow 1", marker="slow"), mail("slow 2", marker="slow")]
    assert run_all(sandbox, submit_all(sandbox, raws)) == ["slow 1", "slow 2"]
    assert sandbox.most_in_flight == 2


def test_a_priority_goes_ahead_of_the_analyses_not_sent_yet(make: MakeSandbox) -> None:
    """The case work waits for a priority: it is sent before queued analyses and answered first."""
    sandbox = make(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    analysed = sandbox.analyse(mail("urgent: the site is down"), null_sender=False)
    assert analysed.mail is not None
    queued = submit_all(sandbox, [mail(f"queued {n}") for n in range(5)])
    decision = sandbox.priority(analysed.mail)
    assert decision == sandbox.analyse(mail("urgent: the site is down"), null_sender=False).priority
    assert run_all(sandbox, queued) == [f"queued {n}" for n in range(5)]


def test_a_thread_waiting_for_its_priority_is_answered_while_another_runs_the_queue(
    make: MakeSandbox,
) -> None:
    """The processor's pipeline thread runs the analyses; the case work asks for priorities."""
    sandbox = make(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    first = sandbox.analyse(mail("printer on fire"), null_sender=False)
    assert first.mail is not None
    assert first.priority is not None
    futures = submit_all(sandbox, [mail(f"queued {n}") for n in range(30)])
    results: list[list[str]] = []
    pipeline = threading.Thread(target=lambda: results.append(run_all(sandbox, futures)))
    pipeline.start()
    decisions = [sandbox.priority(first.mail) for _ in range(5)]
    pipeline.join(60)
    assert not pipeline.is_alive()
    assert decisions == [first.priority] * 5
    assert results == [[f"queued {n}" for n in range(30)]]


def test_new_settings_send_the_requests_in_flight_again(make: MakeSandbox) -> None:
    """A reload restarts the worker; what it held is analysed again, by the new one."""
    sandbox = make(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    futures = submit_all(sandbox, [mail("one"), mail("two"), mail("three")])
    sandbox.run_until(futures[0])  # "two" is in flight now
    sandbox.reconfigure(replace(sandbox.settings, max_parts=500))
    assert run_all(sandbox, futures) == ["one", "two", "three"]
    assert sandbox.restarts == 2


def test_closing_fails_what_was_not_answered(make: MakeSandbox) -> None:
    """Nobody waits forever on a closed sandbox."""
    sandbox = make(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    futures = submit_all(sandbox, [mail("one"), mail("two"), mail("three")])
    sandbox.run_until(futures[0])
    sandbox.close()
    assert [outcome(f) for f in futures] == [
        "one",
        "RuntimeError: the analysis worker was closed",
        "RuntimeError: the analysis worker was closed",
    ]


class _HeldStart(Sandbox):
    """A sandbox whose worker start waits for the test's word."""

    def __init__(self, limits: Limits) -> None:
        super().__init__(settings(), limits, target=misbehaving)
        self.spawning = threading.Event()
        self.go_on = threading.Event()

    def _spawn(self) -> None:
        self.spawning.set()
        self.go_on.wait(30)
        super()._spawn()


def test_start_waits_for_a_start_under_way_in_another_thread() -> None:
    """The import starts the worker while it stages; the first claim's start waits for it.

    Returning at once would let the claim's attempts count the rest of a start-up.
    """
    sandbox = _HeldStart(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    try:
        early = threading.Thread(target=sandbox.start)
        early.start()
        assert sandbox.spawning.wait(30)
        claim = threading.Thread(target=sandbox.start)
        claim.start()
        claim.join(0.3)
        assert claim.is_alive()  # waiting, not returned
        sandbox.go_on.set()
        claim.join(30)
        early.join(30)
        assert not claim.is_alive()
        assert sandbox.restarts == 1
        assert sandbox.analyse(mail("after the start"), null_sender=False).mail is not None
        assert sandbox.restarts == 1
    finally:
        sandbox.go_on.set()
        sandbox.close()


def test_an_unpicklable_request_fails_alone(make: MakeSandbox) -> None:
    """A request that cannot be sent is its own failure; the worker and the rest go on."""
    sandbox = make(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    futures = submit_all(sandbox, [mail("before")])
    with pytest.raises(Exception, match="pickle"):
        sandbox.priority(lambda: None)  # type: ignore[arg-type]
    futures += submit_all(sandbox, [mail("after")])
    assert run_all(sandbox, futures) == ["before", "after"]
    assert sandbox.restarts == 1


def test_an_unreadable_reply_is_its_request_s_failure(make: MakeSandbox) -> None:
    """The reply is read but cannot be rebuilt: that message fails; the next one is right."""
    sandbox = make(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    raws = [mail("unreadable", marker="unreadable"), mail("behind"), mail("last")]
    assert run_all(sandbox, submit_all(sandbox, raws)) == [
        "ValueError: this reply cannot be read",
        "behind",
        "last",
    ]


def test_a_request_its_caller_gave_up_on_is_answered_without_a_fuss(make: MakeSandbox) -> None:
    """The processor fails a group's futures when its pipeline breaks: their replies are dropped."""
    sandbox = make(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    futures = submit_all(sandbox, [mail("one"), mail("two"), mail("three"), mail("four")])
    sandbox.run_until(futures[0])  # "two" is in flight, "three" waits
    for given_up in futures[1:3]:
        given_up.set_exception(RuntimeError("gave up"))
    sandbox.run_until(futures[3])
    assert [outcome(f) for f in futures] == [
        "one",
        "RuntimeError: gave up",
        "RuntimeError: gave up",
        "four",
    ]


def test_a_worker_that_cannot_start_fails_the_request_not_the_conversation() -> None:
    """Its start fails (here: a target it cannot be given): an OSError each time, no hang."""

    def local_target(raw: bytes, settings: AnalysisSettings, null_sender: bool) -> Analysis:
        raise AssertionError("never called")

    sandbox = Sandbox(settings(), Limits(timeout=timedelta(seconds=20)), target=local_target)
    try:
        for _ in range(2):
            with pytest.raises(OSError, match="did not start"):
                sandbox.analyse(mail("first"), null_sender=False)
    finally:
        sandbox.close()


def test_a_worker_that_died_after_replying_is_not_blamed_on_the_next(make: MakeSandbox) -> None:
    """Killed from outside with a reply still unread: the reply is taken, the next goes fresh."""
    sandbox = make(Limits(timeout=timedelta(seconds=20), memory_mb=256))
    futures = submit_all(sandbox, [mail("one"), mail("two"), mail("three")])
    sandbox.run_until(futures[0])  # "two" is in flight
    time.sleep(0.5)  # its analysis takes milliseconds: its reply waits in the socket
    worker = sandbox._proc
    assert worker is not None
    worker.kill()
    worker.wait(10)
    assert run_all(sandbox, futures) == ["one", "two", "three"]
    assert sandbox.restarts == 2
