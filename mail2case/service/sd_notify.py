"""The systemd notify protocol, written straight to ``$NOTIFY_SOCKET`` (sd_notify(3))."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from collections.abc import Mapping

log = structlog.get_logger("mail2case.service.sd_notify")


def socket_address(name: str) -> str | bytes:
    """The ``AF_UNIX`` address for a ``NOTIFY_SOCKET`` value.

    A leading ``@`` names a Linux abstract socket, whose address starts with a NUL byte.
    """
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between pings (half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3) advises).

    None when no watchdog is asked for, or it is meant for another process
    (``$WATCHDOG_PID`` names a different pid).
    """
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


@dataclass
class Notifier:
    """Sends state lines to the service manager; a no-op when not run by one."""

    address: str | bytes | None = None
    watchdog_seconds: float | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` (a missing socket disables both)."""
        env = os.environ if environ is None else environ
        name = env.get("NOTIFY_SOCKET", "")
        if not name or not name.startswith(("/", "@")):
            return cls()
        return cls(socket_address(name), watchdog_interval(env))

    @property
    def is_enabled(self) -> bool:
        """Whether a service manager listens."""
        return self.address is not None

    def send(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False (logged) when it cannot be sent."""
        if self.address is None:
            return False
        # A newline inside a value would start a new field: the protocol has no escaping.
        payload = "\n".join(f"{k}={' '.join(v.splitlines())}" for k, v in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # This runs on the event loop: a manager whose queue is full (it is not
                # reading; Linux queues net.unix.max_dgram_qlen datagrams, often 10) gets
                # this one dropped, instead of the daemon stopping until it reads.
                sock.settimeout(0)  # non-blocking
                sock.connect(self.address)
                sock.sendall(payload.encode())
        except OSError as exc:
            log.warning("sd_notify.send_failed", error=exc.strerror or str(exc))
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """READY=1: start-up is complete (the database is migrated and listeners are up)."""
        return self.send(READY="1", **({"STATUS": status} if status else {}))

    def reloading(self) -> bool:
        """RELOADING=1 with the monotonic time systemd asks for; READY=1 must follow."""
        usec = str(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)
        return self.send(RELOADING="1", MONOTONIC_USEC=usec)

    def watchdog(self) -> bool:
        """WATCHDOG=1: the daemon is alive; systemd restarts it when these stop."""
        return self.send(WATCHDOG="1")

    def stopping(self, status: str = "") -> bool:
        """STOPPING=1: shutdown has begun."""
        return self.send(STOPPING="1", **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        """STATUS=: a one-line summary shown by ``systemctl status``."""
        return self.send(STATUS=text)
