"""Idempotent inserts that two instances may race on without failing."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import literal
from sqlalchemy.dialects import postgresql, sqlite

from storage.deferred import DEFERRED_TABLES, mark_safe

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.dml import Insert

    from storage.models import Base


def insert_if_absent(session: Session, model: type[Base], values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when this call added the row.

    Two instances inserting one key at once must not fail: PostgreSQL makes the second
    wait for the first to commit and then do nothing (SQLite has a single writer).
    The config admits only these two dialects.
    """
    is_postgres = session.get_bind().dialect.name == "postgresql"
    stmt = _insert_ignoring(model, is_postgres=is_postgres)
    return session.execute(stmt, values).first() is not None


@cache
def _insert_ignoring(model: type[Base], *, is_postgres: bool) -> Insert:
    # Built once per table: building the statement cost more than executing it. On the
    # table, not the class: a Core insert skips the ORM's bulk-insert path and autoflush.
    table = table_of(model)
    # RETURNING tells whether a row went in; rowcount is -1 here (SQLAlchemy 2.1 with psycopg).
    stmt = insert_for(table, is_postgres=is_postgres).on_conflict_do_nothing().returning(literal(1))
    # A table whose rows a group's case work never holds back (blobs, customers, the
    # counter) is written at once without first writing the held rows (storage.deferred).
    return stmt if table.name in DEFERRED_TABLES else mark_safe(stmt)


def insert_for(table: Table, *, is_postgres: bool) -> postgresql.Insert:
    """An INSERT on ``table`` with the dialect's ON CONFLICT clauses (SQLite or PostgreSQL)."""
    # SQLite's Insert has the same on_conflict_* methods; typed as PostgreSQL's for both.
    if is_postgres:
        return postgresql.insert(table)
    return cast("postgresql.Insert", sqlite.insert(table))


def table_of(model: type[Base]) -> Table:
    """The table a model maps (every model here maps one table), for Core statements."""
    return cast("Table", model.__table__)
