"""Schema migrations through Alembic, driven from code (no alembic.ini needed).

Alembic is imported only when a database is not at ``HEAD`` already: its import and
its upgrade command (reading the migration scripts) cost a tenth of a second in every
process that opens the database (each piped message, each CLI command, each import),
against one query to see that there is nothing to do.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Engine

# The newest migration's revision (migrations/versions). A test checks that it is the
# head Alembic finds, so a new migration without this bump fails the suite.
HEAD = "0005"


# Any constant shared by all instances: the key of the PostgreSQL advisory lock that
# lets one instance at a time migrate (several may start at once, invariant 7).
MIGRATION_LOCK_KEY = 0x6D61_696C_3263  # "mail2c"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at the packaged migrations and this engine."""
    from alembic.config import Config  # noqa: PLC0415 - only where a migration may run

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("migrations")))
    url = engine.url.render_as_string(hide_password=False)
    # The options go through ConfigParser interpolation: a percent-encoded password
    # ("p%40ss") would be read as a bad interpolation unless escaped.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (creating it when empty)."""
    if revision == "head" and _stored_revision(engine) == HEAD:
        return
    from alembic import command  # noqa: PLC0415 - only where a migration may run

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held until this transaction ends: a second instance waits here, then finds
            # the schema at head instead of failing on CREATE TABLE. SQLite's BEGIN
            # IMMEDIATE already serializes (storage.engine).
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _stored_revision(engine: Engine) -> str | None:
    """What ``alembic_version`` holds, or None (no such table yet: an empty database)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None
    return rows[0][0] if len(rows) == 1 else None


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 - see the top

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - see the top

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
