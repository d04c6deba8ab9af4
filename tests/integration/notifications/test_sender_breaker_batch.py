"""The breaker reads its figures once per claimed batch, and its limits hold across batches."""

from __future__ import annotations

import random
from datetime import timedelta
from email import message_from_bytes
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from sqlalchemy import event, insert, select

from notifications.breaker import BreakerSettings
from notifications.render import build_environment
from notifications.sender import Sender
from notifications.transports import MaildirTransport
from storage import blobs, outbox, suppressions
from storage.engine import make_engine, session_factory
from storage.models import Case, CaseEvent, Outbox
from storage.schema import upgrade
from tests.integration.notifications.test_sender import ACK_CONTEXT, NOW, SETTINGS

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

LATER = NOW + timedelta(minutes=1)


class Statements:
    """The SQL statements the engine runs while listening (one per execute/executemany)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.seen: list[str] = []
        event.listen(sessions.kw["bind"], "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        self.seen.append(" ".join(statement.split()))

    def matching(self, *parts: str) -> list[str]:
        """The statements that contain every one of ``parts``."""
        return [s for s in self.seen if all(p in s for p in parts)]


def new_cases(sessions: sessionmaker[Session], n: int) -> list[int]:
    """The ids of ``n`` new cases."""
    with sessions.begin() as s:
        first = (s.scalar(select(Case.id).order_by(Case.id.desc()).limit(1)) or 0) + 1
        s.execute(
            insert(Case),
            [
                {
                    "ref": 5000 + first + i,
                    "priority": "high",
                    "plan": "standard",
                    "customer_address": f"c{i}@customer.example",
                    "opened_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(n)
            ],
        )
        return list(s.scalars(select(Case.id).where(Case.id >= first).order_by(Case.id)))


def queue(
    sessions: sessionmaker[Session],
    key: str,
    to: Sequence[str],
    *,
    case_id: int | None,
    kind: str = "ack",
    cc: Sequence[str] = (),
    due: timedelta = timedelta(0),
    attachments: list[dict[str, str]] | None = None,
) -> None:
    """One row, due ``due`` after NOW (queue with increasing ``due`` to fix the order)."""
    extra: dict[str, Any] = {"cc_addrs": list(cc)}
    if attachments is not None:
        extra["attachments"] = attachments
    with sessions.begin() as s:
        outbox.enqueue(
            s,
            kind=kind,
            case_id=case_id,
            to_addrs=list(to),
            subject="Re: x",
            template="ack",
            context=ACK_CONTEXT,
            message_id=f"<{key}@example.com>",
            in_reply_to=None,
            references=[],
            dedupe_key=key,
            now=NOW + due,
            extra=extra,
        )


def sender(
    sessions: sessionmaker[Session],
    maildir: Path,
    *,
    claim_batch: int = 4,
    breaker: BreakerSettings | None = None,
) -> Sender:
    """A sender into ``maildir`` with the given batch and breaker."""
    settings = type(SETTINGS)(**{**SETTINGS.__dict__, "breaker": breaker or BreakerSettings()})
    return Sender(
        sessions,
        MaildirTransport(maildir),
        build_environment(),
        settings,
        structlog.get_logger("test.sender"),
        rng=random.Random(1),
        claim_batch=claim_batch,
    )


def drain(s: Sender, now: datetime) -> int:
    """Run passes until one sends nothing; the number sent."""
    total = 0
    while sent := s.run_once(now):
        total += sent
    return total


def rows(sessions: sessionmaker[Session]) -> list[Outbox]:
    """Every outbox row, in id order."""
    with sessions() as s:
        return list(s.scalars(select(Outbox).order_by(Outbox.id)))


def one_pass_statements(tmp_path: Path, sessions: sessionmaker[Session], n: int) -> Statements:
    """The statements of one pass claiming ``n`` rows (distinct recipients and cases) at once.

    Each row has a Cc and a case with a mail sent in the window; one row's Cc bounced.
    """
    cases = new_cases(sessions, n)
    for i, case_id in enumerate(cases):
        queue(sessions, f"old{i}", [f"c{i}@customer.example"], case_id=case_id)
    assert sender(sessions, tmp_path / "old", claim_batch=n).run_once(NOW) == n
    with sessions.begin() as s:
        suppressions.suppress(s, "cc0@customer.example", "bounced", NOW, NOW + timedelta(days=1))
    for i, case_id in enumerate(cases):
        to, cc = [f"C{i}@customer.example"], [f"cc{i}@customer.example"]
        queue(sessions, f"new{i}", to, case_id=case_id, cc=cc, due=timedelta(seconds=i))
    statements = Statements(sessions)
    assert sender(sessions, tmp_path / "out", claim_batch=n).run_once(LATER) == n
    assert [r.status for r in rows(sessions)] == ["sent"] * (2 * n)
    assert [r.cc_addrs for r in rows(sessions)[n:]] == [
        [f"cc{i}@customer.example"] if i else [] for i in range(n)
    ]
    return statements


def test_the_breaker_costs_three_queries_per_batch_however_many_rows(tmp_path: Path) -> None:
    """One claimed batch reads its suppressions and both counts once, for 2 rows as for 12.

    So a pass of one batch runs as many statements for 12 rows as for 2.
    """
    found = {}
    for n in (2, 12):
        engine = make_engine(f"sqlite:///{tmp_path / f'{n}.db'}")
        upgrade(engine)
        found[n] = one_pass_statements(tmp_path / str(n), session_factory(engine), n)
        engine.dispose()
    for statements in found.values():
        assert len(statements.matching("FROM suppressions")) == 1
        assert len(statements.matching("count(*)", "GROUP BY outbox.rcpt_key")) == 1
        assert len(statements.matching("count(*)", "GROUP BY outbox.case_id")) == 1
        assert len(statements.matching("count(*)")) == 2
    assert len(found[12].seen) == len(found[2].seen), (found[2].seen, found[12].seen)


def test_per_recipient_limit_of_acks_holds_across_batches(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Five acknowledgements an hour per first recipient (any case), whatever the batches.

    Notifications to that address are not counted; other recipients are unaffected.
    """
    cases = new_cases(sessions, 10)
    spellings = ["robot@customer.example", "Robot@Customer.example", "ROBOT@customer.example"]
    for i, case_id in enumerate(cases[:8]):
        queue(sessions, f"r{i}", [spellings[i % 3]], case_id=case_id, due=timedelta(seconds=2 * i))
        queue(
            sessions,
            f"o{i}",
            [f"other{i}@customer.example"],
            case_id=cases[8],
            due=timedelta(seconds=2 * i + 1),
        )
    for i in range(2):
        queue(
            sessions,
            f"n{i}",
            ["robot@customer.example"],
            case_id=cases[9],
            kind="notify",
            due=timedelta(seconds=20 + i),
        )
    assert drain(sender(sessions, tmp_path / "out"), LATER) == 15
    by_key = {r.dedupe_key: r for r in rows(sessions)}
    assert [by_key[f"r{i}"].status for i in range(8)] == ["sent"] * 5 + ["suppressed"] * 3
    assert {by_key[f"o{i}"].status for i in range(8)} == {"sent"}
    assert {by_key[f"n{i}"].status for i in range(2)} == {"sent"}
    reason = "per-recipient limit: 5 automatic replies in 1 hour"
    assert [by_key[f"r{i}"].last_error for i in range(5, 8)] == [reason] * 3
    with sessions() as s:
        found = s.execute(
            select(CaseEvent.case_id, CaseEvent.kind, CaseEvent.detail).order_by(CaseEvent.id)
        ).all()
    assert [tuple(e) for e in found] == [
        (cases[i], "outbox_suppressed", f"suppressed: {reason}") for i in range(5, 8)
    ]
    # An hour later the window has moved on: the address is answered again.
    queue(sessions, "r8", ["robot@customer.example"], case_id=cases[0])
    assert drain(sender(sessions, tmp_path / "out"), LATER + timedelta(hours=1, seconds=1)) == 1


def test_per_case_limit_holds_across_batches(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Thirty mails an hour per case, whatever the recipients; another case is unaffected."""
    looping, other = new_cases(sessions, 2)
    for i in range(33):
        queue(
            sessions,
            f"l{i}",
            [f"team{i}@support.example"],
            case_id=looping,
            kind="notify",
            due=timedelta(seconds=i),
        )
    for i in range(3):
        queue(sessions, f"x{i}", [f"ops{i}@support.example"], case_id=other, kind="notify")
    assert drain(sender(sessions, tmp_path / "out"), LATER) == 33
    by_key = {r.dedupe_key: r for r in rows(sessions)}
    assert [by_key[f"l{i}"].status for i in range(33)] == ["sent"] * 30 + ["suppressed"] * 3
    assert {by_key[f"l{i}"].last_error for i in range(30, 33)} == {
        "per-case limit: 30 mails in 1 hour"
    }
    assert {by_key[f"x{i}"].status for i in range(3)} == {"sent"}
    with sessions() as s:
        kinds = s.scalars(select(CaseEvent.case_id).where(CaseEvent.kind == "outbox_suppressed"))
        assert list(kinds) == [looping] * 3


def test_machines_and_bounced_addresses_in_one_batch(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """In one claimed batch: held rows keep their reasons and events, the others are pruned."""
    with sessions.begin() as s:
        suppressions.suppress(
            s, "Gone@Customer.example", "bounced: 5.1.1", NOW, NOW + timedelta(days=7)
        )
        suppressions.suppress(s, "old@customer.example", "bounced", NOW, NOW + timedelta(hours=1))
    cases = new_cases(sessions, 6)
    queue(sessions, "a", ["gone@customer.example"], case_id=cases[0])
    queue(sessions, "b", ["MAILER-DAEMON@relay.example"], case_id=cases[1], kind="notify")
    queue(sessions, "c", ["noreply@vendor.example"], case_id=cases[2], cc=["GONE@customer.example"])
    queue(
        sessions,
        "d",
        ["ann@customer.example"],
        case_id=cases[3],
        cc=["gone@customer.example", "bob@customer.example"],
    )
    queue(
        sessions, "e", ["postmaster@customer.example"], case_id=cases[4], cc=["cy@customer.example"]
    )
    queue(sessions, "f", ["old@customer.example"], case_id=cases[5])  # its suppression ran out
    statements = Statements(sessions)
    mailer = sender(sessions, tmp_path / "out", claim_batch=16)
    assert mailer.run_once(NOW + timedelta(hours=2)) == 3
    assert len(statements.matching("FROM suppressions")) == 1
    assert len(statements.matching("INSERT INTO case_events")) == 1
    found = rows(sessions)
    assert [(r.status, r.last_error) for r in found] == [
        ("suppressed", "no usable recipient: gone@customer.example: bounced: 5.1.1"),
        ("suppressed", "no usable recipient: MAILER-DAEMON@relay.example: system address"),
        (
            "suppressed",
            (
                "no usable recipient: noreply@vendor.example: system address; "
                "GONE@customer.example: bounced: 5.1.1"
            ),
        ),
        ("sent", None),
        ("sent", None),
        ("sent", None),
    ]
    assert [(r.to_addrs, r.cc_addrs) for r in found[3:]] == [
        (["ann@customer.example"], ["bob@customer.example"]),
        (["cy@customer.example"], []),
        (["old@customer.example"], []),
    ]
    with sessions() as session:
        events = session.scalars(select(CaseEvent).order_by(CaseEvent.id)).all()
        assert [(e.case_id, e.kind, e.detail, e.data) for e in events] == [
            (
                cases[i],
                "outbox_suppressed",
                f"suppressed: {found[i].last_error}",
                {"outbox_id": found[i].id, "kind": found[i].kind},
            )
            for i in range(3)
        ]


def test_attachments_of_a_batch_are_read_in_one_query(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """The blobs of every claimed row come in one query; each mail carries its own files."""
    files = {f"{i:064x}": f"file {i}".encode() for i in range(3)}
    with sessions.begin() as s:
        for sha, data in files.items():
            blobs.store_blob(s, sha, data, None)
    shas = list(files)
    for i, wanted in enumerate([shas[:2], shas[1:], [], shas[2:]]):
        attachments = [
            {"sha256": sha, "filename": f"f{sha[-1]}.txt", "content_type": "text/plain"}
            for sha in wanted
        ]
        queue(
            sessions,
            f"a{i}",
            [f"c{i}@customer.example"],
            case_id=None,
            kind="relay",
            due=timedelta(seconds=i),
            attachments=attachments,
        )
    statements = Statements(sessions)
    assert sender(sessions, tmp_path / "out", claim_batch=16).run_once(LATER) == 4
    assert len(statements.matching("FROM blobs")) == 1
    got = {}
    for path in (tmp_path / "out" / "new").iterdir():
        msg = message_from_bytes(path.read_bytes())
        got[str(msg["To"])] = sorted(
            (p.get_filename(), p.get_payload(decode=True)) for p in msg.walk() if p.get_filename()
        )
    assert got == {
        "c0@customer.example": [("f0.txt", b"file 0"), ("f1.txt", b"file 1")],
        "c1@customer.example": [("f1.txt", b"file 1"), ("f2.txt", b"file 2")],
        "c2@customer.example": [],
        "c3@customer.example": [("f2.txt", b"file 2")],
    }


@pytest.mark.parametrize("n", [3, 1201])
def test_batched_helpers_answer_like_one_query_per_key(
    sessions: sessionmaker[Session], n: int
) -> None:
    """Past ``IN_CHUNK`` keys the helpers split their IN lists, and still count right."""
    cases = new_cases(sessions, n)
    with sessions.begin() as s:
        for i in range(0, n, 2):
            suppressions.suppress(s, f"X{i}@customer.example", f"why {i}", NOW, LATER)
    for i, case_id in enumerate(cases):
        queue(sessions, f"k{i}", [f"X{i}@customer.example"], case_id=case_id)
        if i % 3 == 0:
            queue(sessions, f"n{i}", [f"x{i}@customer.example"], case_id=case_id, kind="notify")
    with sessions.begin() as s:
        for row in s.scalars(select(Outbox)):
            if row.id % 2:
                outbox.mark_sent(s, row, NOW)
    with sessions() as s:
        sent = list(s.scalars(select(Outbox).where(Outbox.status == "sent")))
        addresses = [f"x{i}@CUSTOMER.example" for i in range(n)]
        statements = Statements(sessions)
        found = suppressions.suppressed(s, addresses, NOW)
        to = suppressions.sent_to_counts(s, addresses, {"ack"}, NOW)
        too_old = suppressions.sent_to_counts(s, addresses, {"ack"}, NOW + timedelta(seconds=1))
        per_case = suppressions.sent_for_cases_since(s, cases, NOW)
    chunks = -(-n // suppressions.IN_CHUNK)
    assert len(statements.seen) == 4 * chunks
    assert found == {f"x{i}@customer.example": f"why {i}" for i in range(0, n, 2)}
    acks = [r for r in sent if r.kind == "ack"]
    assert to == {r.to_addrs[0].lower(): 1 for r in acks}
    assert too_old == {}
    expected: dict[int, int] = {}
    for r in sent:
        assert r.case_id is not None
        expected[r.case_id] = expected.get(r.case_id, 0) + 1
    assert per_case == expected
