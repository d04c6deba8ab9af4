"""Who is signed in (a session cookie, or a trusted SSO proxy's header) and the CSRF token.

The session is Starlette's signed cookie (HttpOnly, SameSite=Lax, Secure over https);
it holds the agent's address and the CSRF token that every POST form carries. Behind
an SSO proxy, a request from one of ``[web] trusted_proxies`` carrying
``proxy_user_header`` is the agent that header names; from any other peer the header
is ignored.
"""

from __future__ import annotations

import ipaddress
import secrets
from functools import wraps
from typing import TYPE_CHECKING

import structlog
from starlette.responses import PlainTextResponse, RedirectResponse, Response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from mail2case.web.signin import SignIn

    AgentHandler = Callable[[Request, str], Awaitable[Response]]

log = structlog.get_logger("mail2case.web")
SIGNIN_PATH = "/signin"
CSRF_FIELD = "csrf"


def _signin(request: Request) -> SignIn:
    signin: SignIn = request.app.state.board.signin
    return signin


def proxied_agent(request: Request) -> str | None:
    """The agent a trusted proxy names, or None (no proxy configured, or not from one)."""
    web = _signin(request).web
    if not web.proxy_user_header or request.client is None:
        return None
    try:
        peer = ipaddress.ip_address(request.client.host)
    except ValueError:
        return None
    if not any(peer in ipaddress.ip_network(net) for net in web.trusted_proxies):
        return None
    named = request.headers.get(web.proxy_user_header, "").strip().lower()
    return named if named and _signin(request).is_agent(named) else None


def current_agent(request: Request) -> str | None:
    """The signed-in agent: by a trusted proxy, else by the session (still an agent)."""
    proxied = proxied_agent(request)
    if proxied is not None:
        return proxied
    agent = request.session.get("agent")
    if isinstance(agent, str) and _signin(request).is_agent(agent):
        return agent
    return None


def sign_in(request: Request, agent: str) -> None:
    """Start a session for ``agent``: a fresh session and a fresh CSRF token."""
    request.session.clear()
    request.session.update({"agent": agent, CSRF_FIELD: secrets.token_urlsafe(32)})


def sign_out(request: Request) -> None:
    """End the session."""
    request.session.clear()


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use (the sign-in form has one too)."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def is_csrf_valid(request: Request, submitted: object) -> bool:
    """Whether a form's token is this session's."""
    expected = request.session.get(CSRF_FIELD)
    return (
        isinstance(expected, str)
        and bool(expected)
        and isinstance(submitted, str)
        and secrets.compare_digest(submitted.encode(), expected.encode())
    )


def csrf_refused() -> Response:
    """The answer to a POST without this session's CSRF token."""
    log.warning("web.csrf_refused")
    return PlainTextResponse("refused: the form's security token is missing or stale\n", 403)


def agents_only(handler: AgentHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: without a signed-in agent, 303 to the sign-in page and nothing else."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        agent = current_agent(request)
        if agent is None:
            return RedirectResponse(SIGNIN_PATH, 303)
        return await handler(request, agent)

    return guarded
