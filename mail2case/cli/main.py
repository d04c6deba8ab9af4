"""The ``mail2case`` command line: the daemon and what an operator needs at 3 a.m."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError

from mail2case import app
from mail2case.cli import case_update, cases, explain, imap, importing, ops, sla, web
from mail2case.cli import priority as priority_cli
from mail2case.config.effective import masked_settings
from mail2case.config.reader import ConfigError
from mail2case.config.settings import config_path, load_config
from mail2case.log_setup import configure_logging

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mail2case.config.settings import Config

EX_OK, EX_USAGE, EX_TEMPFAIL = 0, 2, 75


def build_parser() -> argparse.ArgumentParser:
    """The parser; every command takes ``--config`` after its name too."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="TOML config (default: $MAIL2CASE_CONFIG, else built-in defaults)",
    )
    parser = argparse.ArgumentParser(prog="mail2case", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", parents=[common], help="run the daemon").set_defaults(func=_run)
    sub.add_parser(
        "check-config", parents=[common], help="validate and print the settings"
    ).set_defaults(func=_check_config)
    _add_db(sub, common)
    _add_ingest(sub, common)
    case_update.add_parsers(cases.add_parsers(sub, common), common)
    sla.add_parsers(sub, common)
    explain.add_parsers(sub, common)
    importing.add_parsers(sub, common)
    ops.add_parsers(sub, common)
    imap.add_parsers(sub, common)
    priority_cli.add_parsers(sub, common)
    web.add_parsers(sub, common)
    return parser


def _add_db(sub: Any, common: argparse.ArgumentParser) -> None:
    db = sub.add_parser("db", parents=[common], help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    db.add_parser("upgrade", parents=[common], help="migrate to the newest schema").set_defaults(
        func=_db_upgrade
    )
    db.add_parser("current", parents=[common], help="show the schema revision").set_defaults(
        func=_db_current
    )


def _add_ingest(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ingest",
        parents=[common],
        help="store messages from files, or one from stdin (an MTA pipe target)",
    )
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument(
        "--no-process", action="store_true", help="only store; leave processing to the daemon"
    )
    p.set_defaults(func=_ingest)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(config_path(getattr(args, "config", None)))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"mail2case: config: {problem}", file=sys.stderr)
        return EX_USAGE
    configure_logging(config.logging.level, config.logging.format)
    try:
        result: int = args.func(args, config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"mail2case: config: {problem}", file=sys.stderr)
        return EX_USAGE
    except OperationalError as exc:
        reason = " ".join(str(exc.orig).split())  # the driver's message, on one line
        print(f"mail2case: database.url: unavailable: {reason}", file=sys.stderr)
        return EX_TEMPFAIL
    return result


def _run(args: argparse.Namespace, config: Config) -> int:
    del args
    import asyncio  # noqa: PLC0415 - only `run` needs the daemon's imports

    from mail2case.service.build import build_daemon  # noqa: PLC0415
    from mail2case.service.startup import StartupError  # noqa: PLC0415

    daemon = build_daemon(config)
    try:
        return asyncio.run(daemon.serve())
    except StartupError as exc:  # one line naming the key, not a traceback
        print(f"mail2case: {exc.key}: {exc.problem}", file=sys.stderr)
        return exc.code


def _check_config(args: argparse.Namespace, config: Config) -> int:
    del args
    app.team_calendar(config)  # resolves holiday_country, which can fail
    print(f"# effective settings from {config.source}")
    print(json.dumps(masked_settings(config), indent=2, default=str))
    for warning in app.config_warnings(config):
        print(f"mail2case: warning: {warning}", file=sys.stderr)
    return EX_OK


def _db_upgrade(args: argparse.Namespace, config: Config) -> int:
    del args
    from storage import schema  # noqa: PLC0415

    engine, _ = app.open_database(config, upgrade=True)
    print(f"database at revision {schema.current_revision(engine)}")
    engine.dispose()
    return EX_OK


def _db_current(args: argparse.Namespace, config: Config) -> int:
    del args
    from storage import schema  # noqa: PLC0415
    from storage.engine import make_engine  # noqa: PLC0415

    engine = make_engine(config.database.url)
    current, head = schema.current_revision(engine), schema.head_revision(engine)
    print(f"current: {current or '(empty)'}\nhead:    {head}")
    engine.dispose()
    return EX_OK if current == head else 1


_NOT_A_MESSAGE_FILE = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def _ingest(args: argparse.Namespace, config: Config) -> int:
    from ingest.sources.stdin import commit_files  # noqa: PLC0415

    engine, sessions = app.open_database(config)
    try:
        ids = commit_files(sessions, [Path(f) for f in args.files] or None)
    except OSError as exc:
        print(f"mail2case: ingest: {exc}", file=sys.stderr)
        # A file that is missing, a directory or unreadable to us stays so when an MTA
        # retries: a permanent error (2), never 75, or the MTA retries it for ever.
        return EX_USAGE if isinstance(exc, _NOT_A_MESSAGE_FILE) else EX_TEMPFAIL
    if not args.no_process:
        _process_now(config, sessions, ids)
    engine.dispose()
    return EX_OK


def _process_now(config: Config, sessions: Any, ids: list[int]) -> None:
    """Process what was just stored; a failure here leaves it pending for the daemon."""
    from datetime import UTC, datetime  # noqa: PLC0415

    import structlog  # noqa: PLC0415

    processor = app.build_processor(config, sessions)
    for inbound_id in ids:
        try:
            processor.handle(inbound_id, datetime.now(UTC))
        except Exception:  # noqa: BLE001 - the raw mail is committed; the daemon retries it
            structlog.get_logger("mail2case.ingest").exception(
                "message.process_failed", inbound_id=inbound_id
            )


if __name__ == "__main__":
    sys.exit(main())
