"""uvicorn on the daemon's own event loop: started and stopped by the daemon's hooks.

The daemon owns the signals (SIGTERM drains the stages in order), so uvicorn's ``serve``
(which installs its own handlers) is not used: its startup, main loop and shutdown are
called in turn. The socket is bound here first, so that a port in use is an ``OSError``
the daemon reports with its key rather than uvicorn's ``sys.exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING

import structlog
import uvicorn

if TYPE_CHECKING:
    from starlette.types import ASGIApp

log = structlog.get_logger("mail2case.web")
STOP_TIMEOUT = 5  # a request in progress is given this long on shutdown


class WebServer:
    """One listening ASGI app on the running loop."""

    def __init__(self, app: ASGIApp, host: str, port: int, name: str) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sockets: list[socket.socket] = []

    async def start(self) -> None:
        """Bind and serve; ``port`` becomes the bound port (0 asks for a free one).

        Raises:
            OSError: the address cannot be bound.
        """
        sock = _bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,  # stdlib loggers go through structlog (mail2case.log_setup)
            access_log=False,
            lifespan="off",
            proxy_headers=False,  # the peer address is the real one: trusted proxies rely on it
            server_header=False,
            timeout_graceful_shutdown=STOP_TIMEOUT,
        )
        config.load()
        server = self._server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        self._sockets = [sock]
        await server.startup(sockets=self._sockets)
        self._task = asyncio.create_task(server.main_loop(), name=self.name)
        log.info("http.listening", server=self.name, host=self.host, port=self.port)

    async def close(self) -> None:
        """Stop accepting, let requests in progress finish within a bound, then stop."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._task, STOP_TIMEOUT)
        await self._server.shutdown(sockets=self._sockets)
        self._server = self._task = None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
