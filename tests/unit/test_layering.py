"""The import rules of DESIGN.md and STYLE.md, checked by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.services import REPO

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = REPO
PACKAGES = ("mail2case", "ingest", "sla", "storage", "notifications")
# Whole folders of the pure core: everything in them is pure, and a new module there is too.
PURE_FOLDERS = ("ingest/mime", "ingest/triage", "ingest/priority")
PURE_FILES = (
    "ingest/errors.py",
    "notifications/errors.py",
    "ingest/history/written_at.py",
    "ingest/agents/commands.py",
    "ingest/agents/reply_address.py",
    "ingest/agents/authentication.py",
    "sla/policy.py",
    "sla/business_hours.py",
    "sla/deadlines.py",
    "sla/clocks.py",
    "notifications/render.py",
)


def pure_paths() -> list[str]:
    """Every pure module, as a path from the repository root."""
    found = [
        str(path.relative_to(ROOT))
        for folder in PURE_FOLDERS
        for path in sorted((ROOT / folder).glob("*.py"))
    ]
    return found + list(PURE_FILES)


PURE = tuple(pure_paths())
IMPURE_MODULES = (
    "sqlalchemy",
    "socket",
    "structlog",
    "logging",
    "smtplib",
    "imapclient",
    "asyncio",
    "aiosmtpd",
    "subprocess",
    "storage",
    "mail2case",
)
CLOCK_CALLS = ("now", "utcnow", "today", "time", "monotonic")


def modules() -> dict[str, Path]:
    """Every project module by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def imports_of(path: Path) -> set[str]:
    """The absolute module names a file imports (type-checking-only imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def runtime_imports_of(path: Path) -> set[str]:
    """Imports that run: those outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def top(name: str) -> str:
    """The top-level package of a dotted name."""
    return name.split(".", 1)[0]


@pytest.mark.parametrize("name", sorted(n for n in modules() if not n.startswith("mail2case")))
def test_nothing_imports_the_composition_root(name: str) -> None:
    """No package below mail2case imports it: dependencies point down."""
    assert not {i for i in imports_of(modules()[name]) if top(i) == "mail2case"}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("ingest", "notifications"),
        ("notifications", "ingest"),
        ("storage", "ingest"),
        ("storage", "sla"),
        ("storage", "notifications"),
        ("sla", "ingest"),
        ("sla", "notifications"),
    ],
)
def test_packages_keep_their_direction(package: str, forbidden: str) -> None:
    """Neither of ingest and notifications imports the other; storage and sla import neither."""
    offenders = [
        name
        for name, path in modules().items()
        if top(name) == package and any(top(i) == forbidden for i in imports_of(path))
    ]
    assert offenders == []


@pytest.mark.parametrize("relpath", PURE)
def test_pure_modules_do_no_io(relpath: str) -> None:
    """Pure modules import no database, socket, logger or edge module, and read no clock."""
    path = ROOT / relpath
    impure = {i for i in imports_of(path) if top(i) in IMPURE_MODULES}
    assert impure == set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    clock_reads = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
        and ast.unparse(node.func.value) in {"datetime", "date", "time", "datetime.datetime"}
    ]
    assert clock_reads == []


def dotted(relpath: str) -> str:
    """The module name of a path from the repository root."""
    return ".".join(Path(relpath).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("relpath", PURE)
def test_pure_modules_import_only_pure_project_modules(relpath: str) -> None:
    """A pure module stays pure through what it imports of the project, too."""
    mods = modules()
    pure = {dotted(p) for p in PURE} | {dotted(f) + ".__init__" for f in PURE_FOLDERS}
    pure |= {dotted(f) for f in PURE_FOLDERS} | {"ingest"}
    project = {i for i in imports_of(ROOT / relpath) if i in mods}
    assert project - pure == set()


def test_role_folders_are_one_level_deep() -> None:
    """Packages hold modules and role folders; a role folder holds modules only."""
    deep = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if len(path.relative_to(ROOT / package).parts) > 2
    ]
    assert deep == []


def _graph(imports: Callable[[Path], set[str]]) -> dict[str, set[str]]:
    mods = modules()
    return {
        name: {i for i in imports(path) if i in mods and i != name} for name, path in mods.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend([*trail, node, nxt])
                return True
            if nxt not in state and visit(nxt, [*trail, node]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if start not in state and visit(start, []):
            break
    return cycle


def test_no_import_cycles() -> None:
    """Runtime imports between project modules form no cycle."""
    assert _cycle(_graph(runtime_imports_of)) == []


def test_no_import_cycles_type_only_included() -> None:
    """Nor do all imports, ``if TYPE_CHECKING:`` ones included: the layers hold for types too."""
    assert _cycle(_graph(imports_of)) == []
