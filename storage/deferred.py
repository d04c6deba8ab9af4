"""The rows of a group's case work, held back and written as one statement per table.

The process stage settles a group of messages in one transaction, each message in a
savepoint of its own. Written as they come, a new case costs a dozen statements (the
case, its clock, contact, message, attachments, events, acknowledgement, outbox rows
and the settled raw row), each a round of SQLAlchemy's execution machinery. Inside
:func:`deferring`, the storage functions that add those rows hand them to a
:class:`DeferredRows` instead, which writes them with one ``executemany`` per table
and statement, in foreign-key order, before the transaction commits: durability is
the commit's, unchanged (invariant 1), and the rows still commit together or not at
all (invariant 4).

Reads must see the held rows. The reads of the case work that know about them (by
message id, content key, case reference, running clocks, first notification) answer
from the held rows or check that none concerns them, and carry :data:`SAFE`. Any other
statement run on the session, and any ORM flush that inserts objects, first writes
the held rows (a *barrier*), so nothing ever reads a table without them.

A barrier inside a message's savepoint writes earlier messages' rows in it; if that
savepoint rolls back, :meth:`DeferredRows.rollback` holds those rows again (and
drops the failed message's own). The ids of held cases and messages are given out
here (SQLite: after the table's highest id, under the write lock every transaction
takes; PostgreSQL: from the column's sequence), so rows that refer to them can be
held too.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, func, literal, select, union_all
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy import Table
    from sqlalchemy.orm import ORMExecuteState, Session
    from sqlalchemy.orm.unitofwork import UOWTransaction
    from sqlalchemy.sql.dml import Insert, Update

    from storage.models import Base

_KEY = "mail2case.deferred_rows"
# Execution option of a statement that is right while rows are held (see the docstring).
SAFE = "mail2case_deferred_safe"
# The order in which held rows are written: every table after those it refers to.
TABLE_ORDER = (
    "cases",
    "contacts",
    "messages",
    "attachments",
    "sla_clocks",
    "case_events",
    "outbox",
    "inbound",
)
DEFERRED_TABLES = frozenset(TABLE_ORDER) - {"inbound"}
# PostgreSQL ids are taken from the sequences ahead, as many as the transaction's
# messages may need at most: a case each, their own message and acknowledgement. Ids
# not given out are lost (a gap is harmless), so no more are taken than may be used:
# the ids are 32-bit.
_IDS_PER_MESSAGE = {"cases": 1, "messages": 2}
_MESSAGES_RANK = TABLE_ORDER.index("messages")


@dataclass
class _Held:
    """One held row: the statement that writes it, and its values (or its ORM object)."""

    rank: int
    stmt: Insert | Update
    row: dict[str, Any]
    obj: Base | None = None  # a held case: its row is read from it when written


@dataclass
class HeldCounter:
    """A counter row this transaction has locked: values given out, the last one written.

    The first value is taken with an UPDATE that locks the row; later ones are given out
    here and the last one written with the held rows (``stmt`` takes it as ``value``).
    The row stays locked until the commit, so nobody else reads it in between.
    """

    stmt: Update
    given: int
    written: int

    def give(self) -> int:
        """The next value."""
        self.given += 1
        return self.given


@dataclass
class _Scope:
    """A message's savepoint: how many rows were held before it, and those written in it."""

    before: int
    written_before: list[_Held] = field(default_factory=list)
    counter: tuple[int, int] | None = None  # the counter's (given, written) when it began


class DeferredRows:
    """The rows held by one transaction; see the module docstring."""

    def __init__(self, *, is_postgres: bool) -> None:
        self.is_postgres = is_postgres
        self.held: list[_Held] = []
        self.scope: _Scope | None = None
        self._ids: dict[str, list[int]] = {}  # PostgreSQL: ids taken, not given out yet
        self._taken: dict[str, int] = {}  # PostgreSQL: how many ids were taken, by table
        self._expected = 0  # how many messages the transaction works (expect_messages)
        self._next_id: dict[str, int] = {}  # SQLite: the next id to give out
        self.memo: dict[Any, Any] = {}  # lookups that hold for the transaction
        # Rows the unit of work inserted (not held ones): a lookup older may be stale.
        self.orm_inserts = 0
        # The messages this transaction wrote from held rows, by content key: (id, case
        # id). A lookup of a key needs not ask the table for them (storage.cases).
        self.written_messages: dict[str, tuple[int, int]] = {}
        self.counter: HeldCounter | None = None  # the case-reference counter, once taken

    def add(self, table: Table, stmt: Insert | Update, row: dict[str, Any]) -> None:
        """Hold ``row`` for ``stmt`` (an INSERT or UPDATE on ``table``)."""
        self.held.append(_Held(TABLE_ORDER.index(table.name), stmt, row))

    def add_object(self, table: Table, stmt: Insert, obj: Base) -> None:
        """Hold an ORM object's row; it is read from the object when written, then attached."""
        self.held.append(_Held(TABLE_ORDER.index(table.name), stmt, {}, obj))

    def rows_of(self, table: Table) -> Iterator[dict[str, Any]]:
        """The held rows of ``table`` (not held objects), in the order they came."""
        rank = TABLE_ORDER.index(table.name)
        return (h.row for h in self.held if h.rank == rank and h.obj is None)

    def values_of(self, table: Table, key: str) -> set[Any]:
        """The values of column ``key`` in the held rows and objects of ``table``."""
        rank = TABLE_ORDER.index(table.name)
        return {
            getattr(h.obj, key) if h.obj is not None else h.row.get(key)
            for h in self.held
            if h.rank == rank
        }

    def next_id(self, session: Session, table: Table) -> int:
        """An id for a new row of ``table`` that no other row has or will take."""
        if self.is_postgres:
            if not self._ids.get(table.name):
                self._take_ids(session, table.name)
            return self._ids[table.name].pop(0)
        if table.name not in self._next_id:
            written = session.connection().scalar(select(func.max(table.c.id)))
            # Rows held again after a savepoint rolled back are not in the table any more.
            highest = max({written or 0} | {i or 0 for i in self.values_of(table, "id")})
            self._next_id[table.name] = highest + 1
        given = self._next_id[table.name]
        self._next_id[table.name] = given + 1
        return given

    def expect_messages(self, count: int) -> None:
        """The transaction works ``count`` messages in all (PostgreSQL takes their ids ahead)."""
        self._expected = max(self._expected, count)

    def _take_ids(self, session: Session, needed: str) -> None:
        """Ids from the sequences, in one statement: for every id table with none left."""
        blocks = {
            name: max(1, self._expected * per - self._taken.get(name, 0))
            for name, per in _IDS_PER_MESSAGE.items()
            if name == needed or name not in self._taken
        }
        parts = [
            select(
                literal(name), func.nextval(func.pg_get_serial_sequence(name, "id"))
            ).select_from(func.generate_series(1, count))
            for name, count in blocks.items()
        ]
        for name, value in session.connection().execute(union_all(*parts)):
            self._ids.setdefault(name, []).append(value)
        for name, count in blocks.items():
            self._ids[name].sort()
            self._taken[name] = self._taken.get(name, 0) + count

    def forget_ids(self, tables: set[str]) -> None:
        """Ids of ``tables`` are taken by another writer (an ORM flush): ask the table again."""
        for name in tables:
            self._next_id.pop(name, None)

    def flush(self, session: Session) -> None:
        """Write every held row: one ``executemany`` per statement and set of columns."""
        counter = self.counter
        if counter is not None and counter.given != counter.written:
            session.connection().execute(counter.stmt, {"value": counter.given})
            counter.written = counter.given
        if not self.held:
            return
        held, self.held = self.held, []
        if self.scope is not None:
            self.scope.written_before.extend(held[: self.scope.before])
            self.scope.before = 0
        conn = session.connection()
        attach: list[tuple[Base, dict[str, Any]]] = []
        for h in held:
            if h.obj is not None:
                # Read now: the object may have changed since it was held. From here on
                # the row is held as values (a rolled-back savepoint holds it again).
                h.row = _columns_of(h.obj)
                attach.append((h.obj, h.row))
                h.obj = None
        self._note_messages(held)
        ordered = sorted(held, key=_batch_key)
        start = 0
        for end in range(1, len(ordered) + 1):
            if end == len(ordered) or _batch_key(ordered[end]) != _batch_key(ordered[start]):
                conn.execute(ordered[start].stmt, [h.row for h in ordered[start:end]])
                start = end
        for obj, row in attach:
            _attach(session, obj, row)

    def _note_messages(self, written: list[_Held]) -> None:
        for h in written:
            if h.rank == _MESSAGES_RANK:
                key, row_id, case_id = (h.row.get(c) for c in ("dedupe_key", "id", "case_id"))
                if key and row_id is not None and case_id is not None:
                    self.written_messages[key] = (row_id, case_id)

    def begin_scope(self) -> None:
        """A message's savepoint begins."""
        counter = self.counter
        self.scope = _Scope(
            len(self.held), counter=(counter.given, counter.written) if counter else None
        )

    def end_scope(self, *, rolled_back: bool) -> None:
        """The message's savepoint ended; if rolled back, hold again what it undid."""
        scope, self.scope = self.scope, None
        if scope is None or not rolled_back:
            return
        self.held = scope.written_before + self.held[: scope.before]
        # What was looked up may have been written in the savepoint (a customer): ask again.
        self.memo.clear()
        self.written_messages.clear()
        # The values given out in the savepoint are given again (references stay gapless).
        if scope.counter is None:
            self.counter = None  # taken in the savepoint: its UPDATE was undone
        elif self.counter is not None:
            self.counter.given, self.counter.written = scope.counter


def _attach(session: Session, obj: Base, row: dict[str, Any]) -> None:
    """Make a written object persistent: a later change is an UPDATE, a query finds it."""
    if obj in session:
        return
    for key, value in row.items():
        # Loaded, so that reading an attribute never goes back to the database.
        set_committed_value(obj, key, value)
    make_transient_to_detached(obj)
    session.add(obj)


def _batch_key(h: _Held) -> tuple[int, int, tuple[str, ...]]:
    # Rows of one statement naming the same columns, in whatever order, share a batch.
    return (h.rank, id(h.stmt), tuple(sorted(h.row)))


def _columns_of(obj: Base) -> dict[str, Any]:
    """Every column of ``obj``'s table, from its attributes (column defaults where unset)."""
    row: dict[str, Any] = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        default = column.default
        if value is None and default is not None and getattr(default, "is_scalar", False):
            value = default.arg
        elif value is None and default is not None and getattr(default, "is_callable", False):
            value = default.arg(None)
        row[column.key] = value
    return row


def held(session: Session) -> DeferredRows | None:
    """The rows held for ``session``'s transaction; None when nothing is deferred."""
    found: DeferredRows | None = session.info.get(_KEY)
    return found


@contextmanager
def deferring(session: Session) -> Iterator[DeferredRows]:
    """Hold the case work's rows until the block ends, then write them (before the commit).

    Use inside the transaction: ``with sessions.begin() as s, deferring(s): ...``. On an
    exception the held rows are dropped with the transaction.
    """
    rows = DeferredRows(is_postgres=session.get_bind().dialect.name == "postgresql")
    session.info[_KEY] = rows
    event.listen(session, "do_orm_execute", _barrier_before_statement)
    event.listen(session, "before_flush", _barrier_before_flush)
    try:
        yield rows
        rows.flush(session)
    finally:
        event.remove(session, "before_flush", _barrier_before_flush)
        event.remove(session, "do_orm_execute", _barrier_before_statement)
        session.info.pop(_KEY, None)


def barrier(session: Session) -> None:
    """Write the held rows now (a read that needs them is about to run)."""
    rows = held(session)
    if rows is not None:
        rows.flush(session)


def hold_or_run(
    session: Session, table: Table, stmt: Insert | Update, rows: list[dict[str, Any]]
) -> None:
    """Hold ``rows`` for ``stmt`` when deferring; otherwise execute it on them now."""
    if not rows:
        return
    found = held(session)
    if found is None:
        session.execute(stmt, rows)
        return
    for row in rows:
        found.add(table, stmt, row)


def expect_messages(session: Session, count: int) -> None:
    """The transaction works ``count`` messages in all (``DeferredRows.expect_messages``)."""
    rows = held(session)
    if rows is not None:
        rows.expect_messages(count)


def mark_safe(stmt: Any) -> Any:
    """``stmt`` marked right while rows are held: it runs without a barrier."""
    return stmt.execution_options(**{SAFE: True})


def begin_scope(session: Session) -> None:
    """A message's savepoint begins (see :meth:`DeferredRows.begin_scope`)."""
    rows = held(session)
    if rows is not None:
        rows.begin_scope()


def end_scope(session: Session, *, rolled_back: bool) -> None:
    """A message's savepoint ended (see :meth:`DeferredRows.end_scope`)."""
    rows = held(session)
    if rows is not None:
        rows.end_scope(rolled_back=rolled_back)


def any_held(session: Session, table: Table, matches: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether a held row of ``table`` matches (False when nothing is deferred)."""
    rows = held(session)
    return rows is not None and any(matches(r) for r in rows.rows_of(table))


def _barrier_before_statement(state: ORMExecuteState) -> None:
    if state.execution_options.get(SAFE):
        return
    barrier(state.session)


def _barrier_before_flush(session: Session, _context: UOWTransaction, _objects: Any) -> None:
    # Objects inserted by the unit of work may refer to held rows; updates of loaded
    # objects cannot (their rows are in the database), so only inserts need the barrier.
    if session.new:
        barrier(session)
        rows = held(session)
        if rows is not None:
            rows.forget_ids({obj.__table__.name for obj in session.new})
            rows.orm_inserts += 1
