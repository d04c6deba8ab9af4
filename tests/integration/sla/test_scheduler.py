"""The SLA scheduler and clock tracking on SQLite and PostgreSQL, cases opened by processing."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, select, update
from structlog.testing import capture_logs

from ingest.agents.reply_address import reply_address
from mail2case import app
from mail2case.config.settings import config_from_mapping
from notifications.render import Envelope, build_environment, render_mail
from sla import tracking
from sla.clocks import Status
from sla.policy import Priority
from sla.scheduler import Scheduler
from storage import cases, inbound, sla_clocks
from storage.engine import make_engine, session_factory
from storage.models import Case, CaseEvent, Outbox, SlaClock
from storage.schema import upgrade

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from mail2case.config.settings import Config

# Monday 2026-11-30 10:00 UTC; a premier customer and a standard one, both in UTC.
SECRET = "integration-reply-secret-0123456789"
MONDAY_10 = datetime(2026, 11, 30, 10, tzinfo=UTC)
FRIDAY_15 = datetime(2026, 12, 4, 15, tzinfo=UTC)
CONFIG: dict[str, Any] = {
    "support": {"address": "support@example.com"},
    "agents": {
        "team_address": "team@example.com",
        "addresses": ["agent@example.com"],
        "reply_secret": SECRET,
    },
    "sla": {"escalation_address": "duty@example.com"},
    "customers": [
        {"name": "Acme", "domains": ["acme.example"], "plan": "premier", "timezone": "UTC"},
        {"name": "Small", "domains": ["small.example"], "plan": "standard", "timezone": "UTC"},
    ],
}


class Site:
    """A database with the process stage and the scheduler wired as the daemon wires them."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        self.config = config
        self.sessions: sessionmaker[Session] = session_factory(engine)
        self.processor = app.build_processor(config, self.sessions)
        self.context = app.sla_context(config)

    def scheduler(self, **overrides: Any) -> Scheduler:
        """A scheduler on this database (a fresh one per instance that would run it)."""
        config = self.config
        if overrides:
            config = config_from_mapping(CONFIG | {"sla": CONFIG["sla"] | overrides})
        return app.build_scheduler(config, self.sessions)

    def deliver(self, msg: EmailMessage, at: datetime) -> int:
        """Commit raw mail and process it at ``at``; returns the case ref."""
        with self.sessions.begin() as s:
            row_id = inbound.add_inbound(s, raw=msg.as_bytes(), source="stdin", now=at).id
        outcome = self.processor.handle(row_id, at)
        assert outcome is not None
        assert outcome.case_ref is not None, outcome
        return outcome.case_ref

    def open_case(self, sender: str, at: datetime, priority: Priority | None = None) -> int:
        """Open a case from ``sender`` at ``at``, then recategorize it to ``priority``."""
        ref = self.deliver(mail(sender, "Export fails", "The export button fails."), at)
        if priority is not None:
            self.update(ref, lambda s, c: self._set_priority(s, c, priority, at))
        return ref

    def _set_priority(self, s: Session, case: Case, priority: Priority, at: datetime) -> None:
        tracking.change_priority(
            s, case, priority, at, actor="lead@example.com", reason="test", context=self.context
        )

    def update(self, ref: int, change: Any) -> None:
        """Run ``change(session, case)`` in one transaction."""
        with self.sessions.begin() as s:
            case = cases.case_by_ref(s, ref)
            assert case is not None
            change(s, case)

    def clocks(self, ref: int) -> list[SlaClock]:
        """Every clock of case ``ref``, oldest first."""
        with self.sessions() as s:
            case = cases.case_by_ref(s, ref)
            assert case is not None
            return list(
                s.scalars(select(SlaClock).where(SlaClock.case_id == case.id).order_by(SlaClock.id))
            )

    def running(self, ref: int) -> list[SlaClock]:
        """The running clocks of case ``ref``."""
        return [c for c in self.clocks(ref) if c.state == "running"]

    def case(self, ref: int) -> Case:
        """Case ``ref`` as stored."""
        with self.sessions() as s:
            found = cases.case_by_ref(s, ref)
            assert found is not None
            return found

    def outbox(self, kind: str) -> list[Outbox]:
        """Outbox rows of ``kind``."""
        with self.sessions() as s:
            return list(s.scalars(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id)))


def agent_mail(ref: int, body: str, in_reply_to: str) -> EmailMessage:
    """An agent's public reply, sent to the case's signed reply address."""
    to = reply_address("support@example.com", ref, SECRET)
    return mail("agent@example.com", "Re: Export fails", body, to, In_Reply_To=in_reply_to)


def mail(
    sender: str, subject: str, body: str, to: str = "support@example.com", **headers: str
) -> EmailMessage:
    """A plain message to ``to`` (support by default)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash((sender, subject, body)))}@test.example>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


@pytest.fixture
def site(database_url: str) -> Iterator[Site]:
    """A migrated database (SQLite file, then PostgreSQL) with the example customers."""
    engine = make_engine(database_url)
    yield Site(engine, config_from_mapping(CONFIG))
    engine.dispose()


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[Site]:
    """A migrated SQLite file database, for what only SQLite can show (its query plans)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'cases.db'}")
    upgrade(engine)
    yield Site(engine, config_from_mapping(CONFIG))
    engine.dispose()


def test_reminder_then_escalation_once_each(site: Site) -> None:
    """Nothing before the threshold, one reminder past it, one escalation past due, then nothing."""
    ref = site.open_case("ann@acme.example", MONDAY_10, Priority.HIGH)
    (clock,) = site.running(ref)
    assert clock.due_at == MONDAY_10 + timedelta(hours=1)
    assert clock.remind_at == MONDAY_10 + timedelta(minutes=45)
    scheduler = site.scheduler()
    assert scheduler.run_once(clock.remind_at - timedelta(seconds=1)) == 0
    assert site.outbox("reminder") == []
    assert scheduler.run_once(clock.remind_at) == 1
    assert scheduler.run_once(clock.remind_at + timedelta(minutes=5)) == 0
    assert scheduler.run_once(clock.due_at) == 1
    for later in (clock.due_at, clock.due_at + timedelta(days=3)):
        assert scheduler.run_once(later) == 0
    (reminder,) = site.outbox("reminder")
    (escalation,) = site.outbox("escalation")
    assert (reminder.to_addrs, reminder.dedupe_key) == (
        ["team@example.com"],
        f"reminder:clock:{clock.id}",
    )
    assert (escalation.to_addrs, escalation.dedupe_key) == (
        ["duty@example.com"],
        f"escalation:clock:{clock.id}",
    )
    assert reminder.context["time_left_words"] == "15 minutes left"
    assert escalation.context["time_left_words"] == "due now"
    # Both thread under the case's first notification to the agents.
    (notified, *_) = site.outbox("notify")
    for notice in (reminder, escalation):
        assert (notice.in_reply_to, notice.references) == (
            notified.message_id,
            [notified.message_id],
        )
    (stored,) = site.running(ref)
    assert (stored.reminded_at, stored.breached_at) == (clock.remind_at, clock.due_at)


@pytest.mark.parametrize("kind", ["reminder", "escalation"])
def test_notices_render_with_their_template(site: Site, kind: str) -> None:
    """The queued context fills every key the reminder and escalation templates list."""
    ref = site.open_case("ann@acme.example", MONDAY_10, Priority.HIGH)
    site.scheduler().tick(
        MONDAY_10 + (timedelta(minutes=50) if kind == "reminder" else timedelta(hours=2))
    )
    (row,) = site.outbox(kind)
    (clock_id,) = re.findall(r"\d+$", row.dedupe_key)
    # The one Message-ID maker's shape; the time travels unformatted, with the zones.
    assert re.fullmatch(rf"<sla\.{kind}\.{clock_id}\.[0-9a-f]{{16}}@example\.com>", row.message_id)
    assert (row.context["customer_timezone"], row.context["team_timezone"]) == ("UTC", "UTC")
    envelope = Envelope(
        "Support", "support@example.com", tuple(row.to_addrs), row.subject, row.message_id
    )
    body = render_mail(build_environment(), row.template, row.context, envelope, now=MONDAY_10)
    text_body = body.get_body(preferencelist=("plain",))
    assert text_body is not None
    content = text_body.get_content()
    assert f"[#{ref}]" in content
    assert "Mon 30 Nov 2026 11:00 UTC" in content
    assert ("10 minutes left" if kind == "reminder" else "overdue by 1 hour") in content


def test_owner_gets_the_reminder_and_no_escalation_address_falls_back(site: Site) -> None:
    """A case owner is reminded instead of the team; without escalation address the team is told."""
    ref = site.open_case("ann@acme.example", MONDAY_10, Priority.HIGH)
    site.update(ref, lambda _s, c: setattr(c, "owner", "bob@example.com"))
    site.scheduler(escalation_address="").tick(MONDAY_10 + timedelta(hours=2))
    assert site.outbox("reminder") == []  # past due: the escalation supersedes it
    (escalation,) = site.outbox("escalation")
    assert escalation.to_addrs == ["team@example.com"]
    ref2 = site.open_case("joe@acme.example", MONDAY_10, Priority.HIGH)
    site.update(ref2, lambda _s, c: setattr(c, "owner", "bob@example.com"))
    site.scheduler().tick(MONDAY_10 + timedelta(minutes=50))
    assert [r.to_addrs for r in site.outbox("reminder")] == [["bob@example.com"]]


def test_racing_schedulers_queue_each_notice_once(site: Site) -> None:
    """Four schedulers running the same pass at once queue one reminder and one escalation."""
    site.open_case("ann@acme.example", MONDAY_10, Priority.HIGH)
    for at in (MONDAY_10 + timedelta(minutes=46), MONDAY_10 + timedelta(minutes=61)):
        start = threading.Barrier(4)
        errors: list[BaseException] = []

        def run(
            at: datetime = at,
            start: threading.Barrier = start,
            errors: list[BaseException] = errors,
        ) -> None:
            start.wait(timeout=10)
            try:
                site.scheduler().run_once(at)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
    assert len(site.outbox("reminder")) == 1
    assert len(site.outbox("escalation")) == 1


def test_stale_read_cannot_queue_a_second_reminder(site: Site) -> None:
    """A second instance that saw the clock before the first committed adds no outbox row."""
    ref = site.open_case("ann@acme.example", MONDAY_10, Priority.HIGH)
    at = MONDAY_10 + timedelta(minutes=50)
    first = site.scheduler().pass_once(at)
    (clock,) = site.running(ref)
    # What the other instance would have read had it run before the commit.
    with site.sessions.begin() as s:
        s.execute(update(SlaClock).where(SlaClock.id == clock.id).values(reminded_at=None))
    with capture_logs() as logs:
        second = site.scheduler().pass_once(at)
    assert [n.is_queued for n in first.notices] == [True]
    assert [n.is_queued for n in second.notices] == [False]
    assert len(site.outbox("reminder")) == 1
    assert "sla.reminder_queued" not in [e["event"] for e in logs]


def test_standard_reminder_at_closing_waits_for_next_opening(site: Site) -> None:
    """A standard reminder due at Friday's closing goes out at Monday's opening, read once."""
    ref = site.open_case("sam@small.example", FRIDAY_15, Priority.HIGH)
    (clock,) = site.running(ref)
    friday_18 = FRIDAY_15 + timedelta(hours=3)
    monday_9 = FRIDAY_15 + timedelta(days=2, hours=18)
    assert (clock.remind_at, clock.due_at) == (friday_18, monday_9 + timedelta(hours=1))
    scheduler = site.scheduler()
    assert scheduler.run_once(friday_18) == 1  # deferred, not sent
    (deferred,) = site.running(ref)
    assert deferred.remind_at == monday_9
    saturday = friday_18 + timedelta(days=1)
    with site.sessions() as s:
        assert sla_clocks.due_for_reminder(s, saturday, 10) == []
    assert scheduler.run_once(saturday) == 0
    assert site.outbox("reminder") == []
    assert scheduler.run_once(monday_9) == 1
    (reminder,) = site.outbox("reminder")
    assert reminder.context["time_left_words"] == "1 hour left"


def test_reminder_outside_hours_goes_at_once_when_configured(site: Site) -> None:
    """With remind_in_business_hours_only off, the Friday-closing reminder is sent at closing."""
    site.open_case("sam@small.example", FRIDAY_15, Priority.HIGH)
    site.scheduler(remind_in_business_hours_only=False).tick(FRIDAY_15 + timedelta(hours=3))
    assert len(site.outbox("reminder")) == 1


def test_premier_reminder_goes_out_at_night(site: Site) -> None:
    """Premier runs round the clock: its reminder is not held for business hours."""
    night = datetime(2026, 12, 5, 23, tzinfo=UTC)  # a Saturday
    site.open_case("ann@acme.example", night, Priority.HIGH)
    site.scheduler().tick(night + timedelta(minutes=45))
    assert len(site.outbox("reminder")) == 1


def test_agent_reply_meets_first_response_and_owes_update(site: Site) -> None:
    """An agent's reply to the acknowledgement meets the first clock and starts the update clock."""
    ref = site.open_case("ann@acme.example", MONDAY_10, Priority.HIGH)
    (ack,) = site.outbox("ack")
    replied = MONDAY_10 + timedelta(minutes=20)
    reply = agent_mail(ref, "Looking into it.", ack.message_id)
    assert site.deliver(reply, replied) == ref
    first, update_clock = site.clocks(ref)[-2:]
    assert (first.kind, first.state, first.ended_at) == ("first", "met", replied)
    assert (update_clock.kind, update_clock.state) == ("update", "running")
    assert update_clock.due_at == replied + timedelta(hours=2)
    case = site.case(ref)
    assert case.first_responded_at == replied
    assert case.next_update_due == replied + timedelta(hours=2)
    assert case.first_response_due == MONDAY_10 + timedelta(hours=1)


def test_pending_stops_update_and_customer_reply_restarts_it(site: Site) -> None:
    """Pending stops the update clock; the customer's reply reopens the case and restarts it."""
    ref = site.open_case("ann@acme.example", MONDAY_10, Priority.HIGH)
    (ack,) = site.outbox("ack")
    agent = agent_mail(ref, "Which browser?", ack.message_id)
    site.deliver(agent, MONDAY_10 + timedelta(minutes=10))
    pending_at = MONDAY_10 + timedelta(minutes=11)
    site.update(
        ref,
        lambda s, c: tracking.change_status(
            s,
            c,
            Status.PENDING,
            pending_at,
            actor="agent@example.com",
            reason="asked",
            context=site.context,
        ),
    )
    assert site.running(ref) == []
    assert site.case(ref).next_update_due is None
    assert site.scheduler().tick(MONDAY_10 + timedelta(days=2)) == []
    answer_at = MONDAY_10 + timedelta(days=3)
    customer = mail("ann@acme.example", "Re: Export fails", "Firefox.", In_Reply_To=ack.message_id)
    site.deliver(customer, answer_at)
    (running,) = site.running(ref)
    assert (running.kind, running.started_at) == ("update", answer_at)
    assert site.case(ref).status == "open"


def test_priority_change_moves_deadline_and_is_audited(site: Site) -> None:
    """Recategorizing keeps the customer's claim, records who and why, moves the deadline."""
    ref = site.open_case("ann@acme.example", MONDAY_10, Priority.LOW)
    claim_before = site.case(ref).customer_priority
    (low,) = site.running(ref)
    assert low.due_at == MONDAY_10 + timedelta(hours=8)
    assert low.remind_at == MONDAY_10 + timedelta(hours=6)
    site.scheduler().tick(low.remind_at)
    at = low.remind_at + timedelta(minutes=1)
    site.update(
        ref,
        lambda s, c: tracking.change_priority(
            s,
            c,
            Priority.MEDIUM,
            at,
            actor="lead@example.com",
            reason="production impact",
            context=site.context,
        ),
    )
    (medium,) = site.running(ref)
    assert medium.started_at == MONDAY_10
    assert medium.due_at == MONDAY_10 + timedelta(hours=4)
    assert site.case(ref).first_response_due == medium.due_at
    assert site.case(ref).customer_priority == claim_before
    site.scheduler().tick(at)
    assert len(site.outbox("escalation")) == 1  # the new deadline had passed already
    with site.sessions() as s:
        changed = s.scalars(select(CaseEvent).where(CaseEvent.kind == "priority_changed")).all()
    data = changed[-1].data
    assert (data["from"], data["to"], data["actor"], data["reason"]) == (
        "low",
        "medium",
        "lead@example.com",
        "production impact",
    )


def test_same_priority_is_no_change(site: Site) -> None:
    """Setting the priority a case already has changes no clock and writes no event."""
    ref = site.open_case("ann@acme.example", MONDAY_10, Priority.HIGH)
    before = [(c.id, c.due_at) for c in site.running(ref)]
    result: list[bool] = []
    site.update(
        ref,
        lambda s, c: result.append(
            tracking.change_priority(
                s,
                c,
                Priority.HIGH,
                MONDAY_10,
                actor="x@example.com",
                reason="same",
                context=site.context,
            )
        ),
    )
    assert result == [False]
    assert [(c.id, c.due_at) for c in site.running(ref)] == before


def test_solved_stops_clocks_and_customer_reply_reopens(site: Site) -> None:
    """A solved case has no running clock; a customer reply reopens it owing a first response."""
    ref = site.open_case("ann@acme.example", MONDAY_10, Priority.HIGH)
    solved_at = MONDAY_10 + timedelta(minutes=5)
    site.update(
        ref,
        lambda s, c: tracking.change_status(
            s,
            c,
            Status.SOLVED,
            solved_at,
            actor="a@example.com",
            reason="dup",
            context=site.context,
        ),
    )
    assert site.running(ref) == []
    assert site.case(ref).closed_at == solved_at
    (ack,) = site.outbox("ack")
    site.deliver(
        mail("ann@acme.example", "Re: x", "Not solved!", In_Reply_To=ack.message_id),
        solved_at + timedelta(hours=1),
    )
    (running,) = site.running(ref)
    assert running.kind == "first"
    assert (site.case(ref).status, site.case(ref).closed_at) == ("open", None)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (sla_clocks.due_for_reminder, "ix_sla_clocks_running_remind"),
        (sla_clocks.due_for_escalation, "ix_sla_clocks_running_due"),
    ],
)
def test_due_queries_read_the_index(sqlite_site: Site, query: Any, index: str) -> None:
    """The scheduler's queries search their (state, time) index instead of scanning sla_clocks."""
    site = sqlite_site
    for minute in range(20):
        site.open_case(f"c{minute}@acme.example", MONDAY_10 + timedelta(minutes=minute))
    with site.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    statements: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        statement, params = args[2], args[3]
        if "sla_clocks" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    event.listen(site.engine, "before_cursor_execute", capture)
    try:
        with site.sessions() as s:
            query(s, MONDAY_10, 10)
    finally:
        event.remove(site.engine, "before_cursor_execute", capture)
    (statement, params) = statements[-1]
    with site.engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
    details = " ".join(str(row[-1]) for row in plan)
    assert f"USING INDEX {index}" in details, details
    assert "SCAN sla_clocks" not in details, details


def test_pass_logs_with_case_ref(site: Site) -> None:
    """Each queued notice logs sla.reminder_queued or sla.breached with the case ref."""
    ref = site.open_case("ann@acme.example", MONDAY_10, Priority.HIGH)
    with capture_logs() as logs:
        site.scheduler().tick(MONDAY_10 + timedelta(minutes=50))
        site.scheduler().tick(MONDAY_10 + timedelta(hours=5))
    events = [(e["event"], e.get("case_ref")) for e in logs if e["event"].startswith("sla.")]
    assert events == [("sla.reminder_queued", ref), ("sla.breached", ref)]


def test_clocks_are_claimed_with_skip_locked_on_postgresql_only(site: Site) -> None:
    """PostgreSQL instances skip clocks another holds; SQLite (one writer) has no such syntax."""
    seen: list[str] = []
    event.listen(site.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with site.sessions() as s:
        sla_clocks.due_for_reminder(s, MONDAY_10, 1)
        sla_clocks.due_for_escalation(s, MONDAY_10, 1)
    locking = [sql for sql in seen if "FOR UPDATE OF sla_clocks SKIP LOCKED" in sql]
    assert len(locking) == (2 if site.engine.dialect.name == "postgresql" else 0)
