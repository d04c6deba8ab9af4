"""``mail2case priority train``: learn from the team's own recategorizations.

The site's labelled cases (``storage.priority_labels``) join the shipped training
data, weighted (``SITE_WEIGHT``), and the new model is installed only if its
cross-validated accuracy on the site's cases is not below the current model's
(``--force`` installs it anyway). Installed means: written to the ``[priority] model``
file when that key is set, else stored in the database, where every instance reads
it. A running daemon picks it up on SIGHUP.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.priority.inference import PriorityRules
from ingest.priority.retraining import Current, Retrained, SiteCase, retrain
from ingest.priority.training import DEFAULT_DATA, load_examples
from mail2case import app
from mail2case.model_choice import ChosenModel, choose_model
from sla.policy import Priority
from storage.files import replace_durably
from storage.priority_labels import SiteLabel, site_labels
from storage.priority_models import InstalledModel, install_model

if TYPE_CHECKING:
    import argparse

    from sqlalchemy.orm import Session, sessionmaker

    from mail2case.config.settings import Config

EX_OK, EX_USAGE = 0, 2


def train(args: argparse.Namespace, config: Config) -> int:
    """Train, compare, install if not worse, and report."""
    engine, sessions = app.open_database(config)
    try:
        with sessions() as s:
            labels = site_labels(s)
        current = choose_model(config, sessions)
        result = retrain(
            load_examples(DEFAULT_DATA),
            [_site_case(label) for label in labels],
            Current(current.model, current.learned_refs),
            PriorityRules.default(),
            floor=config.priority.floor,
        )
        installed, why = _verdict(result, force=args.force)
        where = _install(config, sessions, result, labels, args.actor) if installed else None
    finally:
        engine.dispose()
    report = _report(result, labels, current, installed=installed, why=why, where=where)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(_text(report))
    return EX_OK


def _site_case(label: SiteLabel) -> SiteCase:
    return SiteCase(label.ref, Priority.parse(label.label), label.subject, label.text)


def _verdict(result: Retrained, *, force: bool) -> tuple[bool, str]:
    """Whether to install, and why."""
    if force:
        return True, "--force"
    if result.site_examples == 0:
        return False, "no labelled cases on this site yet: nothing to learn"
    if result.accuracy_before is None:
        return False, "too few labelled cases to compare (2 at least); --force installs"
    if result.is_not_worse:
        return True, "not worse than the current model on the site's cases"
    return False, "worse than the current model on the site's cases; --force installs"


def _install(
    config: Config,
    sessions: sessionmaker[Session],
    result: Retrained,
    labels: list[SiteLabel],
    actor: str | None,
) -> str:
    """Install the new model; where it went."""
    data = result.model.to_bytes()
    if config.priority.model:
        path = Path(config.priority.model)
        # Whole, so a daemon reloading meanwhile reads the old or the new model; 0644:
        # readable by the daemon's user, writable by no other (model_choice refuses that).
        replace_durably(path, data, mode=0o644)
        return f"file {path}"
    record = InstalledModel(
        data=data,
        installed_at=datetime.now(UTC),
        installed_by=actor or _login(),
        examples=result.examples + result.site_examples,
        site_examples=result.site_examples,
        accuracy_before=result.accuracy_before,
        accuracy_after=result.accuracy_after,
        site_labels={str(label.ref): label.label for label in labels},
    )
    with sessions.begin() as s:
        number = install_model(s, record)
    return f"installed #{number}"


def _login() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in some containers
        return "cli"


def _report(
    result: Retrained,
    labels: list[SiteLabel],
    current: ChosenModel,
    *,
    installed: bool,
    why: str,
    where: str | None,
) -> dict[str, Any]:
    corrected = sum(label.source == "corrected" for label in labels)
    return {
        "examples": result.examples + result.site_examples,
        "shipped_examples": result.examples,
        "site_examples": result.site_examples,
        "site_corrected": corrected,
        "site_confirmed": result.site_examples - corrected,
        "accuracy_before": result.accuracy_before,
        "accuracy_after": result.accuracy_after,
        "model_before": current.source,
        "installed": installed,
        "installed_as": where,
        "reason": why,
    }


def _text(report: dict[str, Any]) -> str:
    def score(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        (
            f"trained on {report['examples']} examples: {report['shipped_examples']} shipped, "
            f"{report['site_examples']} of this site ({report['site_corrected']} corrected, "
            f"{report['site_confirmed']} confirmed)"
        ),
        (
            f"accuracy on the site's cases (cross-validated): current ({report['model_before']}) "
            f"{score(report['accuracy_before'])}, new {score(report['accuracy_after'])}"
        ),
    ]
    if report["installed"]:
        lines.append(f"installed: {report['installed_as']} ({report['reason']})")
        lines.append("a running daemon uses it after SIGHUP (systemctl reload mail2case)")
    else:
        lines.append(f"not installed: {report['reason']}")
    return "\n".join(lines)
