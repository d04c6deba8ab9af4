"""The watchdog pings only while every stage is alive: a stuck stage gets the service restarted."""

from __future__ import annotations

import asyncio
import socket
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from mail2case.config.settings import Config
from mail2case.service.daemon import Stage
from mail2case.service.hooks import ServiceHooks, SourceStates
from mail2case.service.metrics import Metrics
from mail2case.service.sd_notify import Notifier

if TYPE_CHECKING:
    from pathlib import Path

    from mail2case.service.reload import Reloader


def hooks_for(stage: Stage, address: str) -> ServiceHooks:
    """Service hooks over one stage, talking to the test's socket."""
    hooks = ServiceHooks(
        Config(),
        Metrics(),
        reloader=cast("Reloader", None),  # never reloads here
        notifier=Notifier(address, 0.1),
        sources=SourceStates([]),
    )
    hooks._daemon = SimpleNamespace(stages=[stage], tasks=[], stop=asyncio.Event())  # type: ignore[assignment]
    return hooks


def pings(sock: socket.socket) -> list[bytes]:
    """Datagrams waiting on the socket."""
    found = []
    while True:
        try:
            found.append(sock.recv(4096))
        except BlockingIOError:
            return found


def test_stuck_stage_withholds_pings(tmp_path: Path) -> None:
    """A pass running past stuck_pass_seconds stops WATCHDOG=1; once it ends, pings resume."""
    path = str(tmp_path / "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)
        stage = Stage("process", lambda _now: 0, 1.0)
        hooks = hooks_for(stage, path)
        hooks._ping_if_alive()
        assert pings(sock) == [b"WATCHDOG=1"]
        stage.busy_since = time.monotonic() - Config().service.stuck_pass.total_seconds() - 1
        hooks._ping_if_alive()
        assert pings(sock) == []
        assert set(hooks.stuck()) == {"process"}
        assert not hooks.is_alive()
        stage.busy_since = None
        hooks._ping_if_alive()
        assert pings(sock) == [b"WATCHDOG=1"]


def test_source_states_from_imap_events() -> None:
    """A mailbox is a readiness problem until it connects or stands by for another instance."""
    states = SourceStates(["helpdesk"])
    assert states.problems() == {"imap:helpdesk": "connecting"}
    states.observe("imap.connection_failed", {"mailbox": "helpdesk", "reason": "refused"})
    assert states.problems() == {"imap:helpdesk": "down: refused"}
    states.observe("imap.connected", {"mailbox": "helpdesk"})
    assert states.problems() == {}
    states.observe("imap.lease_held_elsewhere", {"mailbox": "helpdesk"})
    assert states.problems() == {}
