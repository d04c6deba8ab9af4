"""``mail2case import``: bring an existing mail history in as closed cases, sending nothing."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.history import importer
from ingest.history.archive_source import read_mailbox, read_path
from ingest.history.archive_step import ArchiveStep
from ingest.process import IMPORT_PACE, Processor
from ingest.sources.imap import OAuth2TokenSource
from ingest.sources.mailbox import ImapClientMailbox
from mail2case import app
from storage.statuses import InboundStatus

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ingest.history.archive_source import ArchivedMessage
    from mail2case.config.settings import Config

EX_INTERRUPTED = 130
MAX_WORKERS = 16


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``import SOURCE``."""
    p = sub.add_parser(
        "import",
        parents=[common],
        help="import a mailbox history (mbox, maildir, .eml dir, imap:NAME)",
    )
    p.add_argument(
        "source", help="an mbox file, a maildir, a directory of .eml files, or imap:NAME[/FOLDER]"
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument(
        "--open-since",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="open threads whose last message is a customer's from this date on, clocks running",
    )
    p.add_argument(
        "--ticket-pattern",
        metavar="REGEX",
        default="",
        help=r"the previous system's ticket token with one group, e.g. '\[Ticket#(\d+)\]'",
    )
    p.add_argument(
        "--workers",
        type=worker_count,
        default=None,
        metavar="N",
        help=(
            "analysis worker processes, each within [processing] message_memory_mb "
            "(default: 2 on a machine with 2 cores or more)"
        ),
    )
    p.set_defaults(func=run_import)


def worker_count(text: str) -> int:
    """``--workers``: a whole number from 1 to ``MAX_WORKERS``."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_WORKERS} (got {text!r})"
        )
    return value


def default_workers() -> int:
    """Two workers where there are two cores: the case work keeps up with two, not three.

    Measured on the bench mix: a worker analyses a message in about 1.8 ms, the case
    work takes about 1.2 ms of the importing process, so one worker holds the import
    up and a third would wait for the case work.
    """
    return min(2, os.cpu_count() or 1)


def run_import(args: argparse.Namespace, config: Config) -> int:
    """Stage, process in written order, settle; resumable and idempotent."""
    if args.ticket_pattern:
        try:
            re.compile(args.ticket_pattern)
        except re.error as exc:
            print(f"mail2case: import: --ticket-pattern: {exc}", file=sys.stderr)
            return 2
    try:
        messages = _messages(args.source, config)
    except (FileNotFoundError, LookupError) as exc:
        print(f"mail2case: import: {exc}", file=sys.stderr)
        return 2
    engine, sessions = app.open_database(config)
    summary = importer.ImportSummary()
    settings = dataclasses.replace(
        app.process_settings(config, app.team_calendar(config)), ticket_pattern=args.ticket_pattern
    )
    # Bounded like the daemon's: a poison message in years of history is quarantined
    # instead of hanging the import; the analysis runs on the other cores.
    workers = args.workers or max(default_workers(), config.processing.analysis_workers)
    processor = Processor(
        sessions,
        settings,
        analyser=app.bounded_analyser(config, settings, workers=workers),
        step=ArchiveStep,
        status=InboundStatus.HELD,
        pace=IMPORT_PACE,
    )
    # The worker's start-up (a fresh interpreter and its imports) runs on the other core
    # while this one stages; the first claim waits for it to finish.
    threading.Thread(target=_start_quietly, args=(processor,), daemon=True).start()
    code = 0
    try:
        importer.stage(sessions, messages, datetime.now(UTC), summary)
        importer.process_held(
            processor, sessions, summary, _progress() if sys.stderr.isatty() else None
        )
        if args.open_since is not None:
            since = datetime.combine(args.open_since, datetime.min.time(), tzinfo=UTC)
            importer.open_recent_threads(sessions, since, settings.sla, summary)
    except KeyboardInterrupt:
        code = EX_INTERRUPTED  # each message committed on its own: a re-run resumes here
    finally:
        processor.analyser.close()
        engine.dispose()
    _report(args, summary, interrupted=code != 0)
    return code


def _start_quietly(processor: Processor) -> None:
    """Start the analysis worker; a failure is met again, and reported, at the first claim."""
    with contextlib.suppress(OSError):
        processor.analyser.start()


def _messages(source: str, config: Config) -> Iterator[ArchivedMessage]:
    if not source.startswith("imap:"):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {source}")
        return read_path(path)
    name, _, folder = source.removeprefix("imap:").partition("/")
    box = next((b for b in config.imap if b.name == name), None)
    if box is None:
        known = ", ".join(b.name for b in config.imap) or "none configured"
        raise LookupError(f"no [[imap]] mailbox named {name!r} ({known})")
    token = OAuth2TokenSource(box) if box.uses_oauth2 else None
    return read_mailbox(ImapClientMailbox(box, token), folder or box.folder)


def _progress() -> Any:
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = done / elapsed
        left = (total - done) / rate if rate else 0
        bar = "#" * int(30 * done / max(total, 1))
        sys.stderr.write(f"\r[{bar:<30}] {done}/{total}  {rate:.0f} msg/s  {left:.0f}s left ")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _report(
    args: argparse.Namespace, summary: importer.ImportSummary, *, interrupted: bool
) -> None:
    data = {**summary.as_dict(), "interrupted": interrupted}
    if args.json:
        print(json.dumps(data, indent=2))
        return
    print(
        f"read {summary.read}, imported {summary.imported}, duplicates {summary.duplicates}, "
        f"suppressed {summary.suppressed}, quarantined {summary.quarantined}, "
        f"cases opened {summary.cases_opened}, reopened {summary.cases_reopened}, "
        f"already imported {summary.already_imported}"
        + (" (interrupted: run again to resume)" if interrupted else "")
    )
    if summary.quarantined_ids:
        print(
            "quarantined: "
            + ", ".join(map(str, summary.quarantined_ids))
            + " (see: mail2case quarantine list)"
        )
