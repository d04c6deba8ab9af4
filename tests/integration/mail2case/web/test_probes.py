"""The probes on Starlette: paths, status codes and methods as the hand-written server had them."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter
from starlette.testclient import TestClient

from mail2case.web.probes import Probes, probes_app


def client(*, ready: bool = True, alive: bool = True) -> TestClient:
    """A client of the probes app with fixed answers and one counter registered."""
    registry = CollectorRegistry()
    Counter("board_test_total", "a counter", registry=registry).inc()

    async def readiness() -> tuple[bool, dict[str, Any]]:
        return ready, {"reason": "" if ready else "db: down", "problems": {}}

    return TestClient(probes_app(Probes(registry, readiness, lambda: alive)))


def test_healthy_and_ready_answer_200_with_json() -> None:
    """/healthz and /readyz answer 200 with their JSON bodies, uncached."""
    c = client()
    health = c.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert health.headers["cache-control"] == "no-store"
    assert c.get("/readyz").json()["ready"] is True


def test_not_ready_or_stuck_answers_503() -> None:
    """A stuck stage makes /healthz 503; an unready daemon makes /readyz 503 with the reason."""
    c = client(ready=False, alive=False)
    assert c.get("/healthz").status_code == 503
    ready = c.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"] == "db: down"


def test_metrics_are_the_prometheus_text() -> None:
    """/metrics serves the registry in the Prometheus text format."""
    r = client().get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "board_test_total 1.0" in r.text


def test_other_paths_and_methods() -> None:
    """An unknown path is 404, a POST is 405, and HEAD answers with no body."""
    c = client()
    assert c.get("/nowhere").status_code == 404
    assert c.post("/healthz").status_code == 405
    head = c.head("/healthz")
    assert (head.status_code, head.content) == (200, b"")
