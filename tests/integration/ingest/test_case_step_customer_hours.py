"""Per-customer business hours and targets drive the case's SLA clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mail2case import app
from mail2case.config.settings import config_from_mapping
from storage import cases, inbound
from tests.e2e.test_spine import customer_mail

if TYPE_CHECKING:
    from pathlib import Path

SATURDAY_10 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def first_due(tmp_path: Path, sender: str) -> datetime | None:
    """Open a case from ``sender`` on Saturday 10:00 UTC; its first-response due time."""
    config = config_from_mapping(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'h.db'}"},
            "support": {"address": "support@example.com"},
            "plans": {
                "gold": {
                    "clock": "business",
                    "first_response_hours": {"high": 2, "medium": 3, "low": 5},
                    "update_hours": {"high": 2, "medium": 3, "low": 5},
                }
            },
            "customers": [
                {
                    "name": "Weekend Shop",
                    "domains": ["shop.example"],
                    "plan": "standard",
                    "business_hours": {
                        "start": "08:00",
                        "end": "20:00",
                        "days": ["mon", "tue", "wed", "thu", "fri", "sat"],
                    },
                },
                {"name": "Gold", "domains": ["gold.example"], "plan": "gold"},
            ],
        }
    )
    engine, sessions = app.open_database(config)
    raw = customer_mail("Question", "How do I export my reports?", sender=sender).as_bytes()
    with sessions.begin() as s:
        row_id = inbound.add_inbound(s, raw=raw, source="file", now=SATURDAY_10).id
    outcome = app.build_processor(config, sessions).handle(row_id, SATURDAY_10)
    assert outcome is not None
    assert outcome.case_ref is not None
    with sessions() as s:
        case = cases.case_by_ref(s, outcome.case_ref)
        due = case.first_response_due if case else None
    engine.dispose()
    return due


def test_customer_hours_count_on_saturday(tmp_path: Path) -> None:
    """A customer open Saturdays 08-20 has its 18 low-priority hours counted from Saturday."""
    # 10:00-20:00 Saturday (10 h), then Monday 08:00 + 8 h.
    assert first_due(tmp_path, "ann@shop.example") == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def test_default_hours_wait_for_monday(tmp_path: Path) -> None:
    """Without its own hours, the same mail counts from Monday 09:00 (18 h: Tuesday 18:00)."""
    assert first_due(tmp_path, "bob@elsewhere.example") == datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


def test_customer_plan_sets_targets(tmp_path: Path) -> None:
    """A customer on its own plan gets that plan's targets (low: 5 business hours)."""
    assert first_due(tmp_path, "cy@gold.example") == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
