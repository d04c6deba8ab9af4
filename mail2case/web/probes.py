"""The probes: /healthz, /readyz and /metrics, unauthenticated, for loopback or a scraper."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from prometheus_client import CollectorRegistry
    from starlette.requests import Request

    Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]

NO_STORE = {"Cache-Control": "no-store"}


class Probes:
    """What the probes answer from: liveness, readiness and the metrics registry."""

    def __init__(
        self, registry: CollectorRegistry, readiness: Readiness, alive: Callable[[], bool]
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self.alive = alive

    async def healthz(self, _request: Request) -> Response:
        """200 while the loop answers and no stage is stuck, else 503."""
        ok = self.alive()
        return JSONResponse(
            {"status": "ok" if ok else "stopped"}, 200 if ok else 503, headers=NO_STORE
        )

    async def readyz(self, _request: Request) -> Response:
        """200 when the database answers and every source is up, else 503 with the reasons."""
        ready, detail = await self.readiness()
        return JSONResponse({"ready": ready, **detail}, 200 if ready else 503, headers=NO_STORE)

    async def metrics(self, _request: Request) -> Response:
        """The Prometheus text format; collecting reads the database, so off the loop."""
        body = await run_in_threadpool(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)

    def routes(self) -> list[Route]:
        """The three routes (GET and HEAD only: anything else is 405)."""
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return PlainTextResponse("not found\n", 404, headers=NO_STORE)


def probes_app(probes: Probes) -> Starlette:
    """An app with the probes only: what ``[http] port`` serves."""
    return Starlette(routes=probes.routes(), exception_handlers={404: _not_found})
