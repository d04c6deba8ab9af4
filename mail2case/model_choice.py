"""Which priority model decides: a pinned file, the installed one, or the shipped one.

``[priority] model`` names a file and wins. Empty, the latest model installed in the
database decides (every instance on the database reads the same one), else the model
shipped in the package. The daemon chooses at start and again on SIGHUP.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ingest.priority.model import PriorityModel
from mail2case.config.reader import ConfigError
from storage.priority_models import latest_model

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from mail2case.config.settings import Config

__all__ = ["ChosenModel", "choose_model", "read_model_file"]

log = structlog.get_logger("mail2case.priority")


@dataclass(frozen=True, slots=True)
class ChosenModel:
    """The model, where it came from (for logs and reports), and the site refs it learned."""

    model: PriorityModel
    source: str  # "shipped", "installed #3", or "file /etc/mail2case/priority.json.gz"
    learned_refs: tuple[int, ...] = ()


def choose_model(config: Config, sessions: sessionmaker[Session] | None) -> ChosenModel:
    """The model that decides under ``config``.

    Raises:
        ConfigError: ``priority.model`` names a file that cannot be read, is not a model,
            or is writable by others.
    """
    if config.priority.model:
        path = Path(config.priority.model)
        return ChosenModel(read_model_file(path), f"file {path}")
    if sessions is not None:
        with sessions() as s:
            installed = latest_model(s)
        if installed is not None:
            try:
                model = _parsed(installed.data)
            except ValueError as exc:
                problem = str(exc)
            else:
                refs = tuple(int(ref) for ref in installed.site_labels)
                return ChosenModel(model, f"installed #{installed.id}", refs)
            # A damaged row must not stop the intake: the shipped model still decides.
            log.error("priority.installed_model_invalid", id=installed.id, error=problem)
    return ChosenModel(PriorityModel.shipped(), "shipped")


def read_model_file(path: Path) -> PriorityModel:
    """A model file named by ``[priority] model``, refused when others may write it.

    The format is JSON, never a pickle, so a hostile file cannot run code; a file that
    others can write could still steer every case's clock, so it is refused too.

    Raises:
        ConfigError: naming ``priority.model`` and the problem.
    """
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [f"priority.model: cannot read: {exc.strerror} (got {str(path)!r})"]
        ) from None
    if mode & stat.S_IWOTH:
        problem = f"writable by others (mode {stat.filemode(mode)}); chmod o-w"
        raise ConfigError([f"priority.model: {problem} (got {str(path)!r})"])
    try:
        return _parsed(data)
    except ValueError as exc:
        raise ConfigError([f"priority.model: {exc} (got {str(path)!r})"]) from None


@lru_cache(maxsize=4)
def _parsed(data: bytes) -> PriorityModel:
    """One object per model file's bytes.

    An unchanged model on SIGHUP is then the same object, and the analysis worker,
    which restarts when its settings change, keeps running.
    """
    return PriorityModel.from_bytes(data)
