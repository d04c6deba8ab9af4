"""Idempotent inserts that two instances may race on without failing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import literal
from sqlalchemy.dialects import postgresql, sqlite

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from storage.models import Base


def insert_if_absent(session: Session, model: type[Base], values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when this call added the row.

    Two instances inserting one key at once must not fail: PostgreSQL makes the second
    wait for the first to commit and then do nothing (SQLite has a single writer).
    The config admits only these two dialects.
    """
    is_postgres = session.get_bind().dialect.name == "postgresql"
    insert_for = postgresql.insert if is_postgres else sqlite.insert
    # RETURNING tells whether a row went in; rowcount is -1 here (SQLAlchemy 2.1 with psycopg).
    stmt = insert_for(model).values(values).on_conflict_do_nothing().returning(literal(1))
    return session.execute(stmt).first() is not None
