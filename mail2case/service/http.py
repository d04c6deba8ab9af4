"""A tiny HTTP/1.1 server on the daemon's loop: /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from prometheus_client import CollectorRegistry

    Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]

log = structlog.get_logger("mail2case.http")

MAX_HEAD_BYTES = 8192  # request line and headers; these endpoints take no body
READ_TIMEOUT = 5.0
REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Response:
    """Status, content type and body of one answer."""

    status: int
    content_type: str
    body: bytes

    @classmethod
    def json(cls, status: int, data: dict[str, Any]) -> Response:
        """A JSON answer."""
        return cls(status, "application/json", json.dumps(data).encode() + b"\n")


class StatusServer:
    """Answers one request per connection (``Connection: close``): probes need no more."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        readiness: Readiness,
        alive: Callable[[], bool],
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.readiness = readiness
        self.alive = alive
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; ``port`` becomes the bound port (useful when 0 was asked for in tests)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("http.listening", host=self.host, port=self.port)

    async def close(self) -> None:
        """Stop listening; a request in progress is given a moment to finish."""
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), READ_TIMEOUT)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            response = await self._respond(head)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            response = Response(400, "text/plain", b"bad request\n")
        except ConnectionError:
            writer.close()
            return
        with contextlib.suppress(ConnectionError):
            writer.write(_encode(response, head_only=head.startswith(b"HEAD ")))
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _respond(self, head: bytes) -> Response:
        if len(head) > MAX_HEAD_BYTES:
            return Response(400, "text/plain", b"request too large\n")
        method, _, rest = head.decode("latin-1").partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method not in {"GET", "HEAD"}:
            return Response(405, "text/plain", b"only GET\n")
        if path == "/healthz":
            ok = self.alive()
            return Response.json(200 if ok else 503, {"status": "ok" if ok else "stopped"})
        if path == "/readyz":
            ready, detail = await self.readiness()
            return Response.json(200 if ready else 503, {"ready": ready, **detail})
        if path == "/metrics":
            # Collecting reads the database (gauges): off the loop, like every blocking call.
            body = await asyncio.to_thread(generate_latest, self.registry)
            return Response(200, CONTENT_TYPE_LATEST, body)
        return Response(404, "text/plain", b"not found\n")


def _encode(response: Response, *, head_only: bool = False) -> bytes:
    reason = REASONS.get(response.status, "Bad Request")
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (b"" if head_only else response.body)
