"""The board follows SIGHUP: an agent removed from the config loses the board at the reload."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from tests.support.board import AGENT, Client, board_extra, sign_in
from tests.support.daemon import Daemon, Site, wait_for
from tests.support.services import free_port

if TYPE_CHECKING:
    from pathlib import Path


def test_an_agent_removed_by_sighup_is_signed_out(tmp_path: Path) -> None:
    """Signed in, then dropped from [agents] and reloaded: the next page is the sign-in."""
    port = free_port()
    site = Site(tmp_path, extra=board_extra(tmp_path, port))
    site.write()
    daemon = Daemon(site).start()
    try:
        client = Client(f"http://127.0.0.1:{port}")
        wait_for(lambda: client.get("/signin").status == 200, timeout=15)
        sign_in(client, site)
        assert client.get("/").status == 200
        site.extra = site.extra.replace(f'addresses = ["{AGENT}"]', "addresses = []")
        site.write()
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: any(e.get("event") == "config.reloaded" for e in daemon.log_events()))
        reply = client.get("/")
        assert (reply.status, reply.header("location")) == (303, "/signin")
    finally:
        assert daemon.stop() == 0
