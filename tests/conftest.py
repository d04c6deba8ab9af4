"""Fixtures shared by every suite (real servers started on 127.0.0.1, databases)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from storage.engine import make_engine, session_factory
from storage.schema import upgrade
from tests.support.dovecot import dovecot  # noqa: F401 - re-exported as a fixture
from tests.support.postgres import (  # noqa: F401 - re-exported as fixtures
    database_url,
    empty_database_url,
    postgres,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated SQLite file database (modules may override it)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'mail2case.db'}")
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()
