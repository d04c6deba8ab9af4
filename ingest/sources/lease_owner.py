"""Who holds an IMAP mailbox lease, and whether that holder is provably dead.

An owner is ``host:boot:pid:nonce``. A restarted instance may take over a lease
before it expires only on proof that the holder is gone: the same host name, the same
boot of that host (so the same process table), and no process with that pid. Anything
less (another host, an unknown format, a pid that is alive, perhaps reused) waits out
the lease: a wrong takeover would have two pollers on one mailbox.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Holder:
    """The parts of an owner string."""

    host: str
    boot: str
    pid: int


def new_owner() -> str:
    """This process's owner string: unique per process, nonce included."""
    return f"{socket.gethostname()}:{boot_id()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def boot_id() -> str:
    """A short id of this boot of the host ("-" where the kernel does not say)."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip().replace("-", "")[:12] or "-"
    except OSError:
        return "-"


def parse_owner(owner: str) -> Holder | None:
    """The holder an owner string names; None for another format (an older version's)."""
    parts = owner.rsplit(":", 3)
    if len(parts) != 4 or not parts[2].isdigit():  # noqa: PLR2004 - host:boot:pid:nonce
        return None
    return Holder(parts[0], parts[1], int(parts[2]))


def is_dead_local_owner(owner: str) -> bool:
    """Whether ``owner`` was a process of this host's current boot that no longer runs."""
    holder = parse_owner(owner)
    if holder is None or holder.boot == "-" or holder.pid == os.getpid():
        return False
    if holder.host != socket.gethostname() or holder.boot != boot_id():
        return False
    return not _pid_alive(holder.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence and permission check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True
