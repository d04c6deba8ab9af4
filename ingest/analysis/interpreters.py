"""Helper processes: a fresh interpreter on one end of a socket pair, started and stopped.

Used by the analysis worker (``ingest.analysis.sandbox``) and the daemon's process stage
(``mail2case.service.process_child``). A fresh interpreter (``python -c``), never a fork of the
threaded daemon and not ``multiprocessing``, which would re-import ``__main__``. It
shares our process group, so a signal to the group reaches it too.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from multiprocessing.connection import Connection


def spawn(main: str) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start ``python -c main FD``; returns the process and our end of its socket pair.

    stderr is inherited: the helper's log lines join ours.
    """
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", main, str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        stdin=subprocess.DEVNULL,
    )
    theirs.close()
    return proc, Connection(ours.detach())


def stop(
    proc: subprocess.Popen[bytes] | None, conn: Connection | None, *, kill: bool, timeout: float
) -> None:
    """Close our end (a healthy helper sees EOF and returns), kill if asked, and reap it."""
    if conn is not None:
        conn.close()
    if proc is None:
        return
    if kill:
        proc.kill()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
