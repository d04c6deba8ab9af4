"""The board's ASGI app: its routes, the signed session cookie, the static files, the probes.

Served by :class:`mail2case.web.server.WebServer` on the daemon's own loop when
``[web] enabled``; the probes answer here too (unauthenticated), as on ``[http] port``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mail2case.web import access, actions, pages
from mail2case.web.board import Board
from mail2case.web.signin import SignIn, load_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session, sessionmaker
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ingest.triage.classify import ClassifySettings
    from mail2case.config.settings import Config
    from mail2case.web.probes import Probes

SESSION_COOKIE = "mail2case_board"
# Every page: no framing (clickjacking), no sniffing, scripts and styles from the board only.
SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",
    b"content-security-policy": (
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


def make_signin(
    config: Config,
    sessions: sessionmaker[Session],
    agents: Callable[[], ClassifySettings] | None = None,
) -> SignIn:
    """Sign-in for ``config``, its key read from (or made in) ``[web] session_secret_file``.

    ``agents``: who the agents are now, when they can change while the board runs (SIGHUP).
    """
    return SignIn(config, sessions, load_key(Path(config.web.session_secret_file)), agents)


def board_app(
    config: Config, sessions: sessionmaker[Session], signin: SignIn, probes: Probes | None
) -> Starlette:
    """The board, with the probes when given (the daemon gives its own)."""
    web = config.web
    static = StaticFiles(directory=str(resources.files("mail2case.web") / "static"))
    routes = [
        Route("/", pages.queue_page, methods=["GET"]),
        Route("/queue/rows", pages.queue_rows, methods=["GET"]),
        Route("/cases/{ref:int}", pages.case_page, methods=["GET"]),
        Route("/cases/{ref:int}/attachments/{id:int}", pages.attachment, methods=["GET"]),
        Route("/cases/{ref:int}/priority", actions.change_priority, methods=["POST"]),
        Route("/cases/{ref:int}/status", actions.change_status, methods=["POST"]),
        Route("/cases/{ref:int}/assign", actions.assign, methods=["POST"]),
        Route("/sla", pages.sla_page, methods=["GET"]),
        Route("/signin", access.signin_page, methods=["GET"]),
        Route("/signin", access.request_link, methods=["POST"]),
        Route("/signin/link", access.link_page, methods=["GET"]),
        Route("/signin/link", access.redeem_link, methods=["POST"]),
        Route("/logout", access.logout, methods=["POST"]),
        Mount("/static", app=static, name="static"),
        *(probes.routes() if probes is not None else []),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=signin.session_key,
            session_cookie=SESSION_COOKIE,
            max_age=int(web.session_lifetime.total_seconds()),
            same_site="lax",
            https_only=web.is_https,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={404: _not_found})
    app.state.board = Board(config, sessions, signin)
    return app


async def _not_found(request: Request, _exc: Exception) -> Response:
    return pages.not_found(request, None)


class _SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS.items() if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
