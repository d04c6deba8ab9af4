"""SQL lives in storage/: no module elsewhere imports SQLAlchemy's statement builders."""

from __future__ import annotations

import pytest

from tests.unit.test_layering import imports_of, modules, top

BUILDERS = frozenset(
    f"sqlalchemy.{name}"
    for name in ("select", "insert", "update", "delete", "func", "text", "and_", "or_", "exists")
)
# Where the builders also live: a module importing from these builds SQL too.
BUILDER_MODULES = ("sqlalchemy.sql", "sqlalchemy.dialects")
# Modules that other changes are moving their queries out of; none may be added.
NOT_YET_MOVED = frozenset(
    {
        "ingest.agents.outbox",
        "ingest.case_step",
        "mail2case.cli.cases",
        "mail2case.service.hooks",
        "notifications.sender",
    }
)


def builders_imported(name: str) -> set[str]:
    """The statement builders (and builder modules) that module ``name`` imports."""
    found = imports_of(modules()[name])
    return {i for i in found if i in BUILDERS or i.startswith(BUILDER_MODULES)}


@pytest.mark.parametrize(
    "name",
    sorted(n for n in modules() if top(n) != "storage" and n not in NOT_YET_MOVED),
)
def test_no_statement_building_outside_storage(name: str) -> None:
    """Queries are named functions in storage/; other modules call them."""
    assert not builders_imported(name)


def test_the_check_sees_a_query() -> None:
    """A module that builds SQL is caught: storage's own modules do, by design."""
    assert builders_imported("storage.history") >= {"sqlalchemy.select", "sqlalchemy.func"}
