"""``mail2case priority evaluate``: the daemon's model and floor, scored on labelled lines."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.support.daemon import Site
from tests.support.priority_model import document

if TYPE_CHECKING:
    from pathlib import Path

ROWS = [
    {
        "subject": "Production down",
        "body": "Since 9:00 nobody can log in to production. No workaround.",
        "label": "High",
    },
    {"subject": "Question", "body": "How do I export a report to CSV? Thanks.", "label": "Low"},
    {"subject": "Export", "body": "How can I change the logo on invoices?", "label": "High"},
]


def labelled(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write JSON lines (a blank line included, as editors leave them)."""
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n", encoding="utf-8")
    return path


def test_evaluate_json_has_the_contract_fields(tmp_path: Path) -> None:
    """--json prints accuracy, high_as_low and confusion (label -> decided -> count)."""
    site = Site(tmp_path)
    site.write()
    out = site.cli_json("priority", "evaluate", str(labelled(tmp_path / "l.jsonl", ROWS)))
    assert out["examples"] == 3
    assert out["confusion"]["high"]["high"] == 1
    assert out["confusion"]["low"]["low"] == 1
    # The how-to labelled High is the High read as Low the figures must show.
    assert out["confusion"]["high"]["low"] == 1
    assert out["high_as_low"] == 1
    assert out["accuracy"] == round(2 / 3, 4)
    assert out["per_class"]["low"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert out["floor"] == "none"


def test_evaluate_text_report(tmp_path: Path) -> None:
    """Without --json a reader gets accuracy, each class, the matrix and the High→Low count."""
    site = Site(tmp_path)
    site.write()
    proc = site.cli("priority", "evaluate", str(labelled(tmp_path / "l.jsonl", ROWS[:2])))
    text = proc.stdout.decode()
    assert "accuracy: 1.000 (2/2)" in text
    assert "confusion (rows: label, columns: decided):" in text
    assert "high as low: 0" in text


def test_evaluate_refuses_a_bad_line_with_exit_2(tmp_path: Path) -> None:
    """A line without a label is a usage error naming the file and line."""
    site = Site(tmp_path)
    site.write()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"subject": "x", "body": "y"}) + "\n")
    proc = site.cli("priority", "evaluate", str(bad), check=False)
    assert proc.returncode == 2
    assert "bad.jsonl:2: not a labelled email" in proc.stderr.decode()
    missing = site.cli("priority", "evaluate", str(tmp_path / "none.jsonl"), check=False)
    assert missing.returncode == 2


def test_evaluate_takes_a_model_file_and_a_floor(tmp_path: Path) -> None:
    """--model reads another model file (JSON, no pickle); --floor none turns the floor off."""
    site = Site(tmp_path)
    site.write()
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(document()), encoding="utf-8")
    rows = labelled(tmp_path / "l.jsonl", ROWS)
    out = site.cli_json("priority", "evaluate", str(rows), "--model", str(model), "--floor", "none")
    assert out["model"] == "tiny"
    assert out["floor"] == "none"
    broken = tmp_path / "broken.json"
    broken.write_bytes(b"\x80\x04pickle")
    proc = site.cli("priority", "evaluate", str(rows), "--model", str(broken), check=False)
    assert proc.returncode == 2
    assert "not JSON" in proc.stderr.decode()
