"""Which model decides: a pinned file, the installed one, or the shipped; hostile files refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from ingest.priority.model import PriorityModel
from mail2case.config.reader import ConfigError
from mail2case.config.settings import Config, PrioritySettings
from mail2case.model_choice import choose_model
from storage.priority_models import InstalledModel, install_model

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def pinned(path: Path) -> Config:
    """A config whose ``[priority] model`` names ``path``."""
    return Config(priority=PrioritySettings(model=str(path)))


def installed(data: bytes, refs: dict[str, str] | None = None) -> InstalledModel:
    """A record as ``priority train`` writes it."""
    return InstalledModel(data, NOW, "cli:test", 10, len(refs or {}), 0.5, 0.9, refs or {})


def renamed(name: str) -> bytes:
    """The shipped model's file under another name: a different, valid model file."""
    shipped = PriorityModel.shipped()
    model = PriorityModel(
        shipped.classes, shipped.intercepts, shipped.blocks, probabilistic=True, name=name
    )
    return model.to_bytes()


def test_without_anything_installed_the_shipped_model_decides(
    sessions: sessionmaker[Session],
) -> None:
    """A fresh database: the model shipped in the package."""
    chosen = choose_model(Config(), sessions)
    assert (chosen.source, chosen.model) == ("shipped", PriorityModel.shipped())
    assert chosen.learned_refs == ()


def test_the_latest_installed_model_decides_with_its_refs(sessions: sessionmaker[Session]) -> None:
    """Each install supersedes the one before; the refs it learned come along."""
    with sessions.begin() as s:
        install_model(s, installed(renamed("first")))
        number = install_model(s, installed(renamed("second"), {"1000": "high", "1001": "low"}))
    chosen = choose_model(Config(), sessions)
    assert (chosen.source, chosen.model.name) == (f"installed #{number}", "second")
    assert chosen.learned_refs == (1000, 1001)


def test_unchanged_bytes_give_the_same_object(sessions: sessionmaker[Session]) -> None:
    """SIGHUP with no new model must not look like a change (the worker would restart)."""
    with sessions.begin() as s:
        install_model(s, installed(renamed("same")))
    assert choose_model(Config(), sessions).model is choose_model(Config(), sessions).model


def test_a_damaged_installed_model_leaves_the_shipped_one_deciding(
    sessions: sessionmaker[Session],
) -> None:
    """A bad row must not stop the intake."""
    with sessions.begin() as s:
        install_model(s, installed(b'{"format": "something else"}'))
    assert choose_model(Config(), sessions).source == "shipped"


def test_a_pinned_file_wins_over_the_installed_model(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """``[priority] model`` is the operator's choice."""
    with sessions.begin() as s:
        install_model(s, installed(renamed("installed")))
    path = tmp_path / "pinned.json.gz"
    path.write_bytes(renamed("pinned"))
    path.chmod(0o644)
    chosen = choose_model(pinned(path), sessions)
    assert (chosen.source, chosen.model.name) == (f"file {path}", "pinned")


@pytest.mark.parametrize(
    ("content", "mode", "problem"),
    [
        (None, 0o644, "cannot read"),
        (b"\x80\x04\x95pickle", 0o644, "not JSON"),
        (b"{}", 0o644, "not a mail2case-priority-model document"),
        (b"", 0o666, "writable by others"),
    ],
)
def test_a_pinned_file_that_is_not_safe_is_refused_naming_the_key(
    tmp_path: Path, content: bytes | None, mode: int, problem: str
) -> None:
    """Missing, not our JSON (a pickle is never loaded), or writable by anyone: a config error."""
    path = tmp_path / "model.json.gz"
    if content is not None:
        path.write_bytes(content or renamed("fine"))
        path.chmod(mode)
    with pytest.raises(ConfigError) as raised:
        choose_model(pinned(path), None)
    (message,) = raised.value.problems
    assert message.startswith("priority.model: ")
    assert problem in message
    assert str(path) in message
