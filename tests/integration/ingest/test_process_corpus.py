"""Every message of the corpora (ours, the shared one when present) settles in the process stage."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mail2case import app
from mail2case.config.settings import config_from_mapping
from storage import inbound
from storage.models import Inbound, Message
from tests.support.corpus import CorpusMessage, corpora, in_corpus

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=corpora(), ids=lambda corpus: corpus.name)
def corpus_files(request: pytest.FixtureRequest) -> list[CorpusMessage]:
    """All messages of one corpus (ours always, the shared one when present)."""
    return list(in_corpus(request.param))


def test_each_corpus_message_is_settled_with_a_reason(
    tmp_path: Path, corpus_files: list[CorpusMessage]
) -> None:
    """Each message becomes a case message, or is suppressed or quarantined with a reason."""
    config = config_from_mapping(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'corpus.db'}"},
            "support": {"address": "support@example.com"},
        }
    )
    engine, sessions = app.open_database(config)
    with sessions.begin() as s:
        for message in corpus_files:
            inbound.add_inbound(s, raw=message.raw(), source="file", now=NOW, source_ref=message.id)
    processor = app.build_processor(config, sessions)
    for _ in range(len(corpus_files) // processor.settings.batch_size + 2):
        if processor.run_once(NOW) == 0:
            break
    with sessions() as s:
        rows = list(s.scalars(select(Inbound)))
        stored = s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    engine.dispose()
    unsettled = [r.source_ref for r in rows if r.status == "received"]
    assert unsettled == []
    unexplained = [
        r.source_ref for r in rows if r.status in {"suppressed", "quarantined"} and not r.reason
    ]
    assert unexplained == []
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    # Each processed row stored its message on a case (suppressed ones may not have).
    assert by_status.get("processed", 0) <= (stored or 0)
    assert sum(by_status.values()) == len(corpus_files)
