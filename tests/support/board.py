"""The queue board for tests: served in-process on 127.0.0.1, and a small cookie-keeping client.

The client is ``http.client`` with a cookie jar of one site: it follows no redirect,
so tests see each 303 and each ``Set-Cookie`` as the browser would receive them.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from mail2case import app
from mail2case.config.settings import load_config
from mail2case.web.server import WebServer
from mail2case.web.site import board_app, make_signin

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mail2case.config.settings import Config
    from tests.support.daemon import Site

AGENT = "alice@team.example"
START_TIMEOUT = 10.0
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def board_extra(root: Path, port: int, *, more_web: str = "", more_agents: str = "") -> str:
    """The config tables a site needs for the board: an agent, and ``[web]`` on ``port``."""
    return f"""
[agents]
addresses = ["{AGENT}"]
domains = ["agents.example"]
{more_agents}
[web]
enabled = true
host = "127.0.0.1"
port = {port}
session_secret_file = "{root / "web-session.key"}"
{more_web}
"""


@contextlib.contextmanager
def served(config: Config) -> Iterator[str]:
    """The board of ``config`` on its own loop in a thread; yields its base URL."""
    engine, sessions = app.open_database(config)
    board = board_app(config, sessions, make_signin(config, sessions), None)
    server = WebServer(board, config.web.host, 0, "board")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="board-test", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(START_TIMEOUT)
        yield f"http://127.0.0.1:{server.port}"
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(START_TIMEOUT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT)
        loop.close()
        engine.dispose()


def site_config(site: Site) -> Config:
    """The site's configuration, as the daemon would read it."""
    return load_config(site.config)


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str) -> str:
        """One header's value, or ""."""
        return self.headers.get(name, "")


@dataclass
class Client:
    """A client of one board that keeps its cookies and follows no redirect."""

    base: str
    cookies: dict[str, str] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Reply:
        """One request; the cookies it sets are kept."""
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=15)
        headers = dict(self.extra_headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            conn.close()
        for raw in reply.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value
        return reply

    def get(self, path: str) -> Reply:
        """GET ``path``."""
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str]) -> Reply:
        """POST ``form`` to ``path``."""
        return self.request("POST", path, form)

    def csrf(self, path: str = "/signin") -> str:
        """The CSRF token of the form on ``path``."""
        found = _CSRF.search(self.get(path).text)
        if found is None:
            raise AssertionError(f"no CSRF field on {path}")
        return found.group(1)


def path_of(url: str) -> str:
    """The path and query of a URL (a sign-in link printed by ``web link``)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def redeem(client: Client, link: str) -> Reply:
    """Open a sign-in link and press its button, as an agent does (or as a forger would)."""
    page = client.get(path_of(link))
    found = _CSRF.search(page.text)
    csrf = found.group(1) if found else client.csrf("/signin")  # refused: no button to press
    return client.post("/signin/link", {"csrf": csrf, "token": link.partition("token=")[2]})


def sign_in(client: Client, site: Site, address: str = AGENT) -> None:
    """Sign ``client`` in as ``address`` with a link from ``mail2case web link``."""
    link = site.cli("web", "link", address).stdout.decode().strip()
    reply = redeem(client, link)
    if reply.status != HTTPStatus.SEE_OTHER:
        raise AssertionError(f"sign-in refused: {reply.status} {reply.text[:300]}")
