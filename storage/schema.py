"""Schema migrations through Alembic, driven from code (no alembic.ini needed)."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


# Any constant shared by all instances: the key of the PostgreSQL advisory lock that
# lets one instance at a time migrate (several may start at once, invariant 7).
MIGRATION_LOCK_KEY = 0x6D61_696C_3263  # "mail2c"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at the packaged migrations and this engine."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("migrations")))
    url = engine.url.render_as_string(hide_password=False)
    # The options go through ConfigParser interpolation: a percent-encoded password
    # ("p%40ss") would be read as a bad interpolation unless escaped.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (creating it when empty)."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held until this transaction ends: a second instance waits here, then finds
            # the schema at head instead of failing on CREATE TABLE. SQLite's BEGIN
            # IMMEDIATE already serializes (storage.engine).
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
