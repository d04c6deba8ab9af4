"""CLI command ``web link``: a one-time sign-in URL to the queue board, for an operator."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mail2case import app

if TYPE_CHECKING:
    import argparse

    from mail2case.config.settings import Config

EX_NOT_AGENT = 2


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``web link``."""
    w = sub.add_parser("web", parents=[common], help="the queue board").add_subparsers(
        dest="web_command", required=True, metavar="ACTION"
    )
    p = w.add_parser(
        "link", parents=[common], help="print a one-time sign-in URL for an agent (not mailed)"
    )
    p.add_argument("address", help="the agent's address ([agents] addresses or domains)")
    p.set_defaults(func=web_link)


def web_link(args: argparse.Namespace, config: Config) -> int:
    """``web link ADDRESS``: print the URL; exit 2 when the address is not an agent's.

    The link is the one the sign-in page mails (single-use, short-lived), printed instead:
    whoever runs this command can read the configuration and the database anyway.
    """
    # Here, not at the top: the web stack (Starlette) costs every other command 0.1 s.
    from mail2case.web.site import make_signin  # noqa: PLC0415

    engine, sessions = app.open_database(config)
    try:
        signin = make_signin(config, sessions)
        address = args.address.strip().lower()
        if not signin.is_agent(address):
            print(f"mail2case: web link: {args.address!r} is not an agent", file=sys.stderr)
            return EX_NOT_AGENT
        with sessions.begin() as s:
            link = signin.issue(s, address, datetime.now(UTC))
    finally:
        engine.dispose()
    print(link.url)
    return 0
