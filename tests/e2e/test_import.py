"""``mail2case import``: a history in shuffled order becomes the right closed threads, once."""

from __future__ import annotations

import email.utils
import json
import mailbox
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.support.corpus import Corpus, corpora, importable_dir
from tests.support.daemon import Site

START = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
AGENT = "alice@support.example.com"


def thread_messages(t: int, rng: random.Random) -> list[EmailMessage]:
    """One conversation: a customer's mail, then alternating agent and customer replies."""
    customer = f"customer{t}@client{t % 7}.example"
    at = START + timedelta(hours=rng.randrange(0, 24 * 60))
    msgs: list[EmailMessage] = []
    for i in range(rng.randrange(1, 6)):
        msg = EmailMessage()
        from_agent = i % 2 == 1
        msg["From"] = AGENT if from_agent else customer
        msg["To"] = customer if from_agent else "support@example.com"
        msg["Subject"] = ("Re: " if i else "") + f"[Ticket#{5000 + t}] Problem {t}"
        msg["Date"] = email.utils.format_datetime(at)
        msg["Message-ID"] = f"<t{t}.m{i}@history.example>"
        if msgs:
            msg["In-Reply-To"] = msgs[-1]["Message-ID"]
            msg["References"] = " ".join(m["Message-ID"] for m in msgs)
        msg.set_content(f"Message {i} of thread {t}.")
        msgs.append(msg)
        at += timedelta(hours=rng.randrange(1, 30))
    return msgs


def history(n_threads: int, seed: int) -> tuple[list[EmailMessage], dict[str, int]]:
    """Shuffled messages of ``n_threads`` threads, and each Message-ID's thread number."""
    rng = random.Random(seed)
    threads = [thread_messages(t, rng) for t in range(n_threads)]
    flat = [m for thread in threads for m in thread]
    rng.shuffle(flat)  # replies land before their parents
    return flat, {str(m["Message-ID"]): t for t, thread in enumerate(threads) for m in thread}


def write_mbox(path: Path, msgs: list[EmailMessage]) -> Path:
    """An mbox file holding ``msgs`` in the given order."""
    box = mailbox.mbox(path)
    for m in msgs:
        box.add(m)
    box.flush()
    box.close()
    return path


def write_maildir(path: Path, msgs: list[EmailMessage]) -> Path:
    """A maildir holding ``msgs``."""
    box = mailbox.Maildir(path)
    for m in msgs:
        box.add(m)
    return path


def make_site(tmp_path: Path, name: str = "site") -> Site:
    """A site whose agents are the support.example.com team."""
    root = tmp_path / name
    root.mkdir()
    site = Site(root)
    site.extra = f'[agents]\naddresses = ["{AGENT}"]\nteam_address = "team@support.example.com"\n'
    site.write()
    return site


def import_json(site: Site, *args: str) -> dict[str, Any]:
    """Run ``import`` with --json and decode the summary."""
    return dict(json.loads(site.cli("import", *args, "--json").stdout))


def threads_in(site: Site) -> dict[frozenset[str], tuple[str, int]]:
    """Each case's inbound/outbound Message-IDs, with its status and agent-message count."""
    db = sqlite3.connect(site.root / "cases.db")
    try:
        rows = db.execute(
            "SELECT c.id, c.status, m.message_id, m.direction"
            " FROM cases c JOIN messages m ON m.case_id = c.id"
        ).fetchall()
    finally:
        db.close()
    by_case: dict[int, list[tuple[str, str, str]]] = {}
    for case_id, status, mid, direction in rows:
        by_case.setdefault(case_id, []).append((status, mid, direction))
    return {
        frozenset(mid for _, mid, _ in msgs): (msgs[0][0], sum(1 for *_, d in msgs if d == "out"))
        for msgs in by_case.values()
    }


def outbox_rows(site: Site) -> int:
    """How many outbox rows exist."""
    db = sqlite3.connect(site.root / "cases.db")
    try:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        db.close()


def test_mbox_import_rebuilds_threads_and_sends_nothing(tmp_path: Path) -> None:
    """Shuffled mbox history: one closed case per thread, agent replies outbound, no outbox rows."""
    msgs, thread_of = history(120, seed=3)
    mbox = write_mbox(tmp_path / "history.mbox", msgs)
    site = make_site(tmp_path)
    summary = import_json(site, str(mbox))
    n_threads = len(set(thread_of.values()))
    assert summary["imported"] == len(msgs)
    assert summary["cases_opened"] == n_threads
    assert summary["quarantined"] == 0
    built = threads_in(site)
    expected = {
        frozenset(m for m, t in thread_of.items() if t == k) for k in set(thread_of.values())
    }
    assert set(built) == expected
    assert {status for status, _ in built.values()} == {"closed"}
    assert sum(agents for _, agents in built.values()) == sum(1 for m in msgs if m["From"] == AGENT)
    assert outbox_rows(site) == 0
    again = import_json(site, str(mbox))
    assert again["imported"] == 0
    assert again["already_imported"] == len(msgs)
    assert threads_in(site) == built


def test_the_number_of_workers_changes_nothing_but_the_speed(tmp_path: Path) -> None:
    """One worker and three build the same threads, statuses and summary."""
    msgs, _ = history(40, seed=11)
    mbox = write_mbox(tmp_path / "history.mbox", msgs)
    results = []
    for workers in ("1", "3"):
        site = make_site(tmp_path, f"site{workers}")
        summary = import_json(site, str(mbox), "--workers", workers)
        results.append((summary, threads_in(site)))
    assert results[0] == results[1]
    assert results[0][0]["imported"] == len(msgs)


def test_a_bad_worker_count_is_refused(tmp_path: Path) -> None:
    """``--workers 0`` is a usage error (exit 2) that names the option; nothing is imported."""
    site = make_site(tmp_path)
    mbox = write_mbox(tmp_path / "history.mbox", history(2, seed=1)[0])
    done = site.cli("import", str(mbox), "--workers", "0", check=False)
    assert done.returncode == 2
    assert b"--workers: must be a whole number from 1 to 16 (got '0')" in done.stderr
    assert not (site.root / "cases.db").exists()


def test_maildir_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    """An import stopped half-way and run again ends where an uninterrupted one does."""
    msgs, _ = history(80, seed=5)
    maildir = write_maildir(tmp_path / "Maildir", msgs)
    whole = make_site(tmp_path, "whole")
    import_json(whole, str(maildir))
    resumed = make_site(tmp_path, "resumed")
    _import_half(resumed, maildir)
    summary = import_json(resumed, str(maildir))
    assert summary["already_imported"] == len(msgs)
    assert threads_in(resumed) == threads_in(whole)


def _import_half(site: Site, maildir: Path) -> None:
    """Stage everything and process only half of it, as an import killed mid-way would."""
    from ingest.history import importer  # noqa: PLC0415
    from ingest.history.archive_source import read_path  # noqa: PLC0415
    from ingest.history.archive_step import ArchiveStep  # noqa: PLC0415
    from ingest.process import Processor  # noqa: PLC0415
    from mail2case import app  # noqa: PLC0415
    from mail2case.config.settings import load_config  # noqa: PLC0415
    from storage.statuses import InboundStatus  # noqa: PLC0415

    config = load_config(site.config)
    engine, sessions = app.open_database(config)
    summary = importer.ImportSummary()
    importer.stage(sessions, read_path(maildir), datetime.now(UTC), summary)
    processor = Processor(
        sessions,
        app.process_settings(config, app.team_calendar(config)),
        step=ArchiveStep,
        status=InboundStatus.HELD,
    )
    with sessions() as s:
        ids = importer.held_ids(s)
    for inbound_id in ids[: len(ids) // 2]:
        processor.handle(inbound_id, START)
    engine.dispose()


def test_open_since_opens_threads_waiting_on_us(tmp_path: Path) -> None:
    """Threads whose last message is a customer's after the date open with clocks from it."""
    msgs, thread_of = history(60, seed=11)
    mbox = write_mbox(tmp_path / "history.mbox", msgs)
    since = START + timedelta(days=30)
    site = make_site(tmp_path)
    summary = import_json(site, str(mbox), "--open-since", since.date().isoformat())
    last: dict[int, EmailMessage] = {}
    for m in msgs:
        t = thread_of[str(m["Message-ID"])]
        if t not in last or email.utils.parsedate_to_datetime(
            m["Date"]
        ) > email.utils.parsedate_to_datetime(last[t]["Date"]):
            last[t] = m
    waiting = {
        t
        for t, m in last.items()
        if m["From"] != AGENT and email.utils.parsedate_to_datetime(m["Date"]) >= since
    }
    assert summary["cases_reopened"] == len(waiting)
    listed = site.cli_json("cases", "list")
    open_cases = [c for c in listed if c["status"] == "open"]
    assert len(open_cases) == len(waiting)
    for case in open_cases:
        due = (
            case["first_response_due"]
            if case["first_responded_at"] is None
            else case["next_update_due"]
        )
        assert due is not None
    assert outbox_rows(site) == 0


def test_ticket_pattern_threads_without_headers(tmp_path: Path) -> None:
    """The previous system's ticket token joins messages that carry no threading headers."""
    msgs = []
    for i in range(3):
        msg = EmailMessage()
        msg["From"] = "bob@client.example"
        msg["To"] = "support@example.com"
        msg["Subject"] = f"{'Re: ' * i}[Ticket#77] Printer"
        msg["Date"] = email.utils.format_datetime(START + timedelta(days=i))
        msg["Message-ID"] = f"<p{i}@client.example>"
        msg.set_content(f"part {i}")
        msgs.append(msg)
    site = make_site(tmp_path)
    summary = import_json(
        site, str(write_mbox(tmp_path / "h.mbox", msgs)), "--ticket-pattern", r"\[Ticket#(\d+)\]"
    )
    assert summary["cases_opened"] == 1


@pytest.mark.parametrize("which", corpora(), ids=lambda corpus: corpus.name)
def test_corpus_imports_without_error(tmp_path: Path, which: Corpus) -> None:
    """A whole corpus imports; bad messages are quarantined, none crash the import."""
    corpus = importable_dir(which, tmp_path / "corpus")
    site = make_site(tmp_path)
    summary = import_json(site, str(corpus))
    files = sum(1 for p in corpus.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert summary["read"] == files
    total = (
        summary["imported"] + summary["duplicates"] + summary["suppressed"] + summary["quarantined"]
    )
    assert total + summary["already_imported"] == files
    assert outbox_rows(site) == 0


def test_a_message_past_the_memory_bound_is_quarantined_and_the_import_goes_on(
    tmp_path: Path,
) -> None:
    """The import analyses within the daemon's per-message bound: no history can hang it."""
    msgs, _ = history(3, seed=5)
    big = EmailMessage()
    big["From"] = "bob@client1.example"
    big["To"] = "support@example.com"
    big["Subject"] = "logs"
    big["Message-ID"] = "<big@history.example>"
    big.set_content("See attached.")
    big.add_attachment(b"\x00" * (40 * 1024 * 1024), maintype="application", subtype="zip")
    mbox = write_mbox(tmp_path / "history.mbox", [big, *msgs])
    site = make_site(tmp_path)
    text = site.config.read_text(encoding="utf-8")
    site.config.write_text(
        text.replace("[processing]\n", "[processing]\nmessage_memory_mb = 48\n"), encoding="utf-8"
    )
    summary = import_json(site, str(mbox))
    assert summary["imported"] == len(msgs), summary
    assert summary["quarantined"] == 1, summary
    db = sqlite3.connect(site.root / "cases.db")
    try:
        reasons = db.execute("SELECT reason FROM inbound WHERE status = 'quarantined'").fetchall()
    finally:
        db.close()
    assert reasons == [("poison: exceeded 48 MiB",)]
