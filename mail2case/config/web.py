"""The ``[web]`` table: the queue board's listener, its sign-in and its trusted proxy."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from mail2case.config.reader import Section

# An HTTP field name (RFC 9110 token); the proxy's header is read by this name.
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
# Beside the SQLite file of the embedded default: the daemon and the CLI both find it.
KEY_FILE = "web-session.key"


@dataclass(frozen=True)
class WebSettings:
    """The queue board: off by default; on loopback when on."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8025
    # How agents reach the board (links in mail); "": http://host:port.
    base_url: str = ""
    # The key that signs sign-in links and session cookies; created on first use.
    session_secret_file: str = KEY_FILE
    session_lifetime: timedelta = timedelta(hours=12)
    link_lifetime: timedelta = timedelta(minutes=15)
    links_per_hour: int = 5
    refresh: timedelta = timedelta(seconds=15)
    # Peers whose ``proxy_user_header`` names the signed-in agent (an SSO proxy).
    trusted_proxies: tuple[str, ...] = ()
    proxy_user_header: str = ""

    @property
    def url(self) -> str:
        """The board's base URL, without a trailing slash."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def is_https(self) -> bool:
        """Whether agents reach the board over https (the cookie is then ``Secure``)."""
        return self.url.startswith("https://")


def read_web_settings(s: Section) -> WebSettings:
    """``[web]``, validated; problems are gathered in ``s``."""
    d = WebSettings()
    host = s.str("host", d.host)
    if not host:
        s.problem("host", "must be an address to listen on, such as 127.0.0.1", host)
        host = d.host
    return WebSettings(
        enabled=s.bool("enabled", default=d.enabled),
        host=host,
        port=s.int("port", d.port, 1, 65535),
        base_url=_base_url(s),
        session_secret_file=s.str("session_secret_file", d.session_secret_file)
        or _required(s, "session_secret_file", d.session_secret_file),
        session_lifetime=timedelta(
            hours=s.int("session_hours", int(d.session_lifetime.total_seconds() // 3600), 1, 720)
        ),
        link_lifetime=timedelta(
            minutes=s.int("link_minutes", int(d.link_lifetime.total_seconds() // 60), 1, 60)
        ),
        links_per_hour=s.int("links_per_hour", d.links_per_hour, 1, 100),
        refresh=s.seconds("refresh_seconds", d.refresh, 1, 3600),
        trusted_proxies=_proxies(s),
        proxy_user_header=_proxy_header(s),
    )


def _required(s: Section, name: str, default: str) -> str:
    s.problem(name, "must not be empty", "")
    return default


def _base_url(s: Section) -> str:
    value = s.str("base_url")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query:
        s.problem("base_url", "must be an http:// or https:// URL like https://desk.example", value)
        return ""
    return value.rstrip("/")


def _proxies(s: Section) -> tuple[str, ...]:
    found = []
    for value in s.str_list("trusted_proxies"):
        try:
            found.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            s.problem("trusted_proxies", "must be IP addresses or networks (CIDR)", value)
    return tuple(found)


def _proxy_header(s: Section) -> str:
    value = s.str("proxy_user_header")
    if value and not _HEADER_NAME.fullmatch(value):
        s.problem("proxy_user_header", "must be an HTTP header name such as X-Remote-User", value)
        return ""
    if value and not s.str_list("trusted_proxies"):
        s.problem("proxy_user_header", "needs trusted_proxies: the peers allowed to send it")
    return value
