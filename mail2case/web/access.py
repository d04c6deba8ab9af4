"""The sign-in pages and logout: ask for a link, open it, confirm it, sign out.

Opening a link shows a button rather than signing in at once: mail scanners that
fetch every link in a mail must not use it up. The page that asks for a link answers
the same for any address, so it tells nobody who is an agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from mail2case.web.auth import (
    CSRF_FIELD,
    SIGNIN_PATH,
    csrf_refused,
    current_agent,
    is_csrf_valid,
    sign_in,
    sign_out,
)
from mail2case.web.board import board_of

if TYPE_CHECKING:
    from starlette.requests import Request

MAX_ADDRESS = 254  # RFC 5321's path limit


async def signin_page(request: Request) -> Response:
    """``GET /signin``: the form that mails a link (or the queue, when signed in already)."""
    if current_agent(request) is not None:
        return RedirectResponse("/", 303)
    return board_of(request).page(request, "signin.html", None, sent=False)


async def request_link(request: Request) -> Response:
    """``POST /signin``: mail a link to the address if it is an agent's (rate-limited)."""
    form = await request.form()
    if not is_csrf_valid(request, form.get(CSRF_FIELD)):
        return csrf_refused()
    board = board_of(request)
    raw = form.get("address", "")
    address = raw.strip()[:MAX_ADDRESS] if isinstance(raw, str) else ""
    if address:
        await run_in_threadpool(board.signin.mail_link, address, board.now())
    minutes = int(board.config.web.link_lifetime.total_seconds() // 60)
    return board.page(request, "signin.html", None, sent=True, address=address, minutes=minutes)


async def link_page(request: Request) -> Response:
    """``GET /signin/link?token=...``: the button that uses the link (nothing used yet)."""
    token = request.query_params.get("token", "")
    board = board_of(request)
    if not token or not board.signin.is_well_signed(token):
        return board.page(request, "signin_link.html", None, 400, refused=True, token="")
    return board.page(request, "signin_link.html", None, refused=False, token=token)


async def redeem_link(request: Request) -> Response:
    """``POST /signin/link``: use the link up and start a session, or say it is not valid."""
    form = await request.form()
    if not is_csrf_valid(request, form.get(CSRF_FIELD)):
        return csrf_refused()
    board = board_of(request)
    token = form.get("token", "")
    agent = (
        await run_in_threadpool(board.signin.redeem, token, board.now())
        if isinstance(token, str) and token
        else None
    )
    if agent is None:
        return board.page(request, "signin_link.html", None, 400, refused=True, token="")
    sign_in(request, agent)
    return RedirectResponse("/", 303)


async def logout(request: Request) -> Response:
    """``POST /logout``: end the session (CSRF-checked, so no page can sign an agent out)."""
    form = await request.form()
    if not is_csrf_valid(request, form.get(CSRF_FIELD)):
        return csrf_refused()
    sign_out(request)
    return RedirectResponse(SIGNIN_PATH, 303)
