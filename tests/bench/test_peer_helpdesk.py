"""The peer benchmark's pure parts; the benchmark itself is not run here (its venv needs pip)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.peer_helpdesk import peer_python

if TYPE_CHECKING:
    from pathlib import Path


def test_a_peer_venv_built_for_the_requirement_is_reused_as_is(tmp_path: Path) -> None:
    """A venv whose marker names the requirement is returned untouched: no venv or pip run."""
    venv = tmp_path / "peer"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("not rebuilt")
    (venv / "bench-requirement.txt").write_text("django-helpdesk==2.6.1")
    assert peer_python("django-helpdesk==2.6.1", venv) == python
    assert python.read_text() == "not rebuilt"
