"""A group's case work is written one statement per table, and reads still see its rows.

On SQLite and on PostgreSQL: the rows of a group's new cases go in with one INSERT per
table; a reply, a duplicate or a lookup of a case opened earlier in the same group
finds what the group has not written yet; and a message that fails in the middle of a
group undoes its own rows only.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, func, select, text

from ingest import process
from ingest.case_step import CaseStep
from mail2case import app
from mail2case.config.settings import config_from_mapping
from storage import inbound
from storage.models import Case, CaseEvent, Customer, Inbound, Message, Outbox, SlaClock
from storage.statuses import InboundStatus

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from ingest.outcome import Outcome
    from ingest.process import Processor

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
SUPPORT = "support@example.com"
WRITTEN = re.compile(r"^\s*(INSERT INTO|UPDATE) (\w+)", re.IGNORECASE)


def customer_mail(n: int, *, subject: str = "", reply_to: str = "", body: str = "") -> bytes:
    """Mail ``n``, of customer ``n`` or, replying to ``<m{k}@...>``, of customer k."""
    threading = f"In-Reply-To: {reply_to}\r\nReferences: {reply_to}\r\n" if reply_to else ""
    sender = reply_to.removeprefix("<m").partition("@")[0] if reply_to else n
    return (
        f"From: Customer {sender} <c{sender}@client.example>\r\nTo: {SUPPORT}\r\n"
        f"Subject: {subject or f'Question number {n}'}\r\nMessage-ID: <m{n}@client.example>\r\n"
        f"{threading}Date: Mon, 07 Dec 2026 09:00:00 +0000\r\n\r\n"
        f"{body or f'Hello, question {n}.'}\r\n"
    ).encode()


@pytest.fixture
def one_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole group in one case-work transaction (not split at 30 ms on a loaded machine)."""
    monkeypatch.setattr(process, "LIVE_PACE", process.Pace(transaction_seconds=600.0))


class Site:
    """A migrated database with a processor on it, and the statements it ran."""

    def __init__(self, url: str) -> None:
        config = config_from_mapping(
            {
                "database": {"url": url},
                "support": {"address": SUPPORT},
                "customers": [{"name": "Acme", "domains": ["acme.example"], "plan": "premier"}],
            }
        )
        self.engine: Engine
        self.sessions: sessionmaker[Session]
        self.engine, self.sessions = app.open_database(config)
        self.processor: Processor = app.build_processor(config, self.sessions)
        self.written: Counter[tuple[str, str]] = Counter()
        self.statements: list[str] = []
        event.listen(self.engine, "before_cursor_execute", self._record)

    def _record(self, *args: Any) -> None:
        self.statements.append(args[2])
        found = WRITTEN.match(args[2])
        if found:
            self.written[found[1].upper(), found[2].lower()] += 1

    def handle(self, raws: list[bytes]) -> list[Outcome | None]:
        """Commit ``raws`` as received rows, then process them as one group."""
        with self.sessions.begin() as s:
            ids = [
                inbound.add_inbound(s, raw=raw, source="smtp", now=NOW, mail_from="c@x").id
                for raw in raws
            ]
        self.written.clear()
        self.statements.clear()
        return [o for _, o in self.processor.handle_many([(i, NOW) for i in ids])]

    def count(self, stmt: Any) -> int:
        """The scalar ``stmt`` answers."""
        with self.sessions() as s:
            return int(s.scalar(stmt) or 0)


@pytest.fixture
def site(empty_database_url: str) -> Iterator[Site]:
    """A site on each kind of database."""
    made = Site(empty_database_url)
    yield made
    made.engine.dispose()


@pytest.mark.usefixtures("one_transaction")
def test_a_group_of_new_cases_is_one_insert_per_table(site: Site) -> None:
    """Twelve new cases: one INSERT into each table of the case work, one UPDATE of the rows."""
    done = site.handle([customer_mail(n) for n in range(12)])
    assert [o.status if o else None for o in done] == [InboundStatus.PROCESSED] * 12
    assert site.count(select(func.count()).select_from(Case)) == 12
    assert site.count(select(func.count()).where(Outbox.kind == "ack")) == 12
    assert site.count(select(func.count()).select_from(SlaClock)) == 12
    # The case's message and its acknowledgement's, for each case.
    assert site.count(select(func.count()).select_from(Message)) == 24
    for table in ("cases", "contacts", "messages", "sla_clocks", "case_events", "outbox"):
        assert site.written["INSERT INTO", table] == 1, site.written
    assert site.written["UPDATE", "inbound"] == 2, site.written  # the claims, the settling
    # The reference counter: the bump that locks it, and the last reference given.
    assert site.written["UPDATE", "counters"] == 2, site.written
    with site.sessions() as s:
        assert list(s.scalars(select(Case.ref).order_by(Case.id))) == list(range(1000, 1012))
    # The twelve duplicate checks in one query.
    checks = [sql for sql in site.statements if sql.startswith("SELECT") and "dedupe_key" in sql]
    assert len(checks) == 1, checks


@pytest.mark.usefixtures("one_transaction")
def test_a_copy_of_a_message_written_earlier_in_the_group_is_a_duplicate(site: Site) -> None:
    """The copy of a message the group has written already is found (a reply made it write).

    The reply makes the group write the first mail's rows; the copy after it must not be
    answered by the lookup made before the rows were there.
    """
    first = customer_mail(1, subject="Export broken")
    reply = customer_mail(2, subject="Re: Export broken", reply_to="<m1@client.example>")
    done = site.handle([first, reply, first])
    assert [o.status if o else None for o in done] == [
        InboundStatus.PROCESSED,
        InboundStatus.PROCESSED,
        InboundStatus.DUPLICATE,
    ]
    assert site.count(select(func.count()).where(Message.direction == "in")) == 2


@pytest.mark.usefixtures("one_transaction")
def test_rows_written_mid_group_do_not_make_the_duplicate_checks_ask_again(site: Site) -> None:
    """Messages the group wrote are known by their content keys: no second lookup.

    The reply writes the held rows; the copy after it is found among the rows the group
    wrote, and the other keys looked up before stay answered (a query each, before).
    """
    first = customer_mail(1, subject="Export broken")
    reply = customer_mail(2, subject="Re: Export broken", reply_to="<m1@client.example>")
    done = site.handle([first, reply, first, customer_mail(3), customer_mail(4)])
    assert [o.status if o else None for o in done] == [
        InboundStatus.PROCESSED,
        InboundStatus.PROCESSED,
        InboundStatus.DUPLICATE,
        InboundStatus.PROCESSED,
        InboundStatus.PROCESSED,
    ]
    checks = [sql for sql in site.statements if sql.startswith("SELECT") and "dedupe_key" in sql]
    assert len(checks) == 1, checks


@pytest.mark.usefixtures("one_transaction")
def test_postgresql_ids_are_taken_for_the_group_in_one_statement(site: Site) -> None:
    """The ids of a group's cases and messages: one query, no more than it may use (32-bit ids)."""
    if site.engine.dialect.name != "postgresql":
        pytest.skip("SQLite gives ids after the table's highest, under its write lock")
    site.handle([customer_mail(n) for n in range(12)])
    taken = [sql for sql in site.statements if "nextval" in sql]
    assert len(taken) == 1, taken
    with site.sessions() as s:
        cases = s.scalar(text("SELECT last_value FROM cases_id_seq"))
        messages = s.scalar(text("SELECT last_value FROM messages_id_seq"))
    # A case, its message and its acknowledgement's for each of the twelve.
    assert (cases, messages) == (12, 24)


@pytest.mark.usefixtures("one_transaction")
def test_a_reply_in_the_same_group_threads_to_the_case_opened_there(site: Site) -> None:
    """The reply's thread lookup finds the message its group has not written yet."""
    first = customer_mail(1, subject="Export broken")
    reply = customer_mail(2, subject="Re: Export broken", reply_to="<m1@client.example>")
    opened, replied = site.handle([first, reply])
    assert opened is not None
    assert replied is not None
    assert opened.opened
    assert not replied.opened
    assert replied.case_id == opened.case_id
    assert site.count(select(func.count()).select_from(Case)) == 1


@pytest.mark.usefixtures("one_transaction")
def test_the_same_mail_twice_in_a_group_is_stored_once(site: Site) -> None:
    """The content key of a held message makes its copy a duplicate, as a written one would."""
    raw = customer_mail(3)
    first, copy = site.handle([raw, raw])
    assert first is not None
    assert copy is not None
    assert first.status == InboundStatus.PROCESSED
    assert copy.status == InboundStatus.DUPLICATE
    assert site.count(select(func.count()).where(Message.direction == "in")) == 1


class _BrokenOnBoom(CaseStep):
    """The case step, failing on a message whose subject says boom (a bug).

    It fails once the message is threaded, that is after its lookup by Message-ID.
    """

    def existing_case(self) -> Case | None:
        found = super().existing_case()
        if "boom" in self.mail.subject:
            raise RuntimeError("a bug in the case step")
        return found


@pytest.mark.usefixtures("one_transaction")
def test_a_failure_after_a_read_of_held_rows_keeps_the_others(site: Site) -> None:
    """A failing reply, whose lookup wrote the earlier rows in its savepoint, loses only itself.

    The reply to mail 1 makes the group write mail 1's rows inside the reply's savepoint;
    when that savepoint rolls back they are held again and committed with the group.
    """
    site.processor.step = _BrokenOnBoom
    first = customer_mail(1, subject="Export broken")
    boom = customer_mail(2, subject="Re: boom", reply_to="<m1@client.example>")
    done = site.handle([first, boom, customer_mail(3)])
    assert [o.status if o else None for o in done] == [
        InboundStatus.PROCESSED,
        InboundStatus.QUARANTINED,
        InboundStatus.PROCESSED,
    ]
    assert site.count(select(func.count()).select_from(Case)) == 2
    assert site.count(select(func.count()).where(Outbox.kind == "ack")) == 2
    with site.sessions() as s:
        cases = {row.case_id for row in s.scalars(select(Inbound)) if row.case_id is not None}
        kinds = Counter(s.scalars(select(CaseEvent.kind)))
    assert len(cases) == 2
    assert kinds["opened"] == 2


class _BrokenAfterOpening(CaseStep):
    """The case step, failing on a message whose subject says boom once its case is made."""

    def _create_case(self, *args: Any, **kwargs: Any) -> Case:
        case = super()._create_case(*args, **kwargs)
        if "boom" in self.mail.subject:
            raise RuntimeError("a bug after the case was opened")
        return case


@pytest.mark.usefixtures("one_transaction")
def test_a_case_undone_in_its_savepoint_gives_its_reference_back(site: Site) -> None:
    """References stay gapless: the failed message's reference goes to the next case."""
    site.processor.step = _BrokenAfterOpening
    done = site.handle([customer_mail(1), customer_mail(2, subject="boom"), customer_mail(3)])
    assert [o.status if o else None for o in done] == [
        InboundStatus.PROCESSED,
        InboundStatus.QUARANTINED,
        InboundStatus.PROCESSED,
    ]
    with site.sessions() as s:
        assert list(s.scalars(select(Case.ref).order_by(Case.id))) == [1000, 1001]
    # The counter holds the last reference given: the next case is 1002.
    assert site.handle([customer_mail(4)])[0] is not None
    with site.sessions() as s:
        assert s.scalar(select(func.max(Case.ref))) == 1002


@pytest.mark.usefixtures("one_transaction")
def test_a_customer_made_in_an_undone_savepoint_is_made_again(site: Site) -> None:
    """The first mail of a customer fails after creating it; the next one creates it anew."""
    site.processor.step = _BrokenAfterOpening
    boom = customer_mail(1, subject="boom").replace(b"c1@client.example", b"ann@acme.example")
    fine = customer_mail(2).replace(b"c2@client.example", b"bob@acme.example")
    done = site.handle([boom, fine])
    assert [o.status if o else None for o in done] == [
        InboundStatus.QUARANTINED,
        InboundStatus.PROCESSED,
    ]
    with site.sessions() as s:
        customer = s.scalar(
            select(Case.customer_id).where(Case.customer_address == "bob@acme.example")
        )
        assert customer is not None
        assert s.scalar(select(Customer.name).where(Customer.id == customer)) == "Acme"


@pytest.mark.usefixtures("one_transaction")
def test_a_group_of_replies_updates_its_cases_in_one_statement(site: Site) -> None:
    """Each reply changes its case; the next reply's reads need not write that first.

    The thread lookup and the clock read skip the autoflush when only cases changed
    (``storage.autoflush``); the cases' new times are written together, and kept.
    """
    site.handle([customer_mail(n) for n in range(6)])
    with site.sessions() as s:
        before = {row.id: row.updated_at for row in s.execute(select(Case.id, Case.updated_at))}
    later = NOW.replace(hour=11)
    with site.sessions.begin() as s:
        ids = [
            inbound.add_inbound(
                s,
                raw=customer_mail(10 + n, reply_to=f"<m{n}@client.example>"),
                source="smtp",
                now=later,
                mail_from="c@x",
            ).id
            for n in range(6)
        ]
    site.written.clear()
    done = [o for _, o in site.processor.handle_many([(i, later) for i in ids])]
    assert all(o is not None and not o.opened for o in done)
    assert site.written["UPDATE", "cases"] == 1, site.written
    with site.sessions() as s:
        after = {row.id: row.updated_at for row in s.execute(select(Case.id, Case.updated_at))}
    assert after.keys() == before.keys()
    assert all(after[case] > before[case] for case in after), (before, after)
