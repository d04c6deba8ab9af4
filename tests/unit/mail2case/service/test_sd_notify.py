"""The notify protocol against a datagram socket the test owns, as systemd would hold it."""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING

import pytest

from mail2case.service.sd_notify import Notifier, socket_address, watchdog_interval

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket and its NOTIFY_SOCKET value."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield sock, str(path)


def received(sock: socket.socket) -> dict[str, str]:
    """One datagram as its KEY=value fields."""
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_watchdog_stopping_and_status_arrive(listener: tuple[socket.socket, str]) -> None:
    """READY=1, WATCHDOG=1, STOPPING=1 and STATUS= each arrive as one datagram."""
    sock, name = listener
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": name})
    assert notifier.ready("received 0")
    assert received(sock) == {"READY": "1", "STATUS": "received 0"}
    assert notifier.watchdog()
    assert received(sock) == {"WATCHDOG": "1"}
    assert notifier.status("received 3, processed 3, sent 1, queued 0")
    assert received(sock) == {"STATUS": "received 3, processed 3, sent 1, queued 0"}
    assert notifier.stopping()
    assert received(sock) == {"STOPPING": "1"}


def test_reloading_carries_monotonic_time(listener: tuple[socket.socket, str]) -> None:
    """RELOADING=1 comes with MONOTONIC_USEC, as systemd requires for reload notifications."""
    sock, name = listener
    Notifier.from_environment({"NOTIFY_SOCKET": name}).reloading()
    fields = received(sock)
    assert fields["RELOADING"] == "1"
    assert int(fields["MONOTONIC_USEC"]) > 0


def test_newline_in_status_cannot_inject_a_field(listener: tuple[socket.socket, str]) -> None:
    """A status text with a newline stays one STATUS field instead of forging READY=1."""
    sock, name = listener
    Notifier.from_environment({"NOTIFY_SOCKET": name}).status("bad\nREADY=1")
    assert received(sock) == {"STATUS": "bad READY=1"}


def test_a_manager_that_does_not_read_never_blocks_the_sender(
    listener: tuple[socket.socket, str],
) -> None:
    """Once the listener's queue is full, a datagram is dropped (False) instead of waiting."""
    sock, name = listener
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": name})
    # Linux queues net.unix.max_dgram_qlen datagrams (10 to 512): a blocking send would
    # hang the test here (pytest-timeout) once they are queued.
    results = [notifier.watchdog()]
    while results[-1] and len(results) < 5000:
        results.append(notifier.watchdog())
    assert results[0] is True
    assert results[-1] is False
    assert received(sock) == {"WATCHDOG": "1"}  # the queued ones still arrive


def test_abstract_socket_name() -> None:
    """A NOTIFY_SOCKET starting with '@' reaches a Linux abstract socket."""
    name = f"@mail2case-test-{uuid.uuid4().hex}"
    assert socket_address(name) == b"\0" + name[1:].encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name[1:].encode())
        sock.settimeout(5)
        assert Notifier.from_environment({"NOTIFY_SOCKET": name}).ready()
        assert received(sock) == {"READY": "1"}


def test_without_notify_socket_nothing_is_sent() -> None:
    """Outside systemd the notifier is disabled and every call is a quiet no-op."""
    notifier = Notifier.from_environment({})
    assert not notifier.is_enabled
    assert not notifier.ready()
    assert not notifier.watchdog()


def test_unreachable_socket_is_reported_not_raised(tmp_path: Path) -> None:
    """A socket path nobody listens on makes send() return False rather than crash the daemon."""
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.is_enabled
    assert not notifier.watchdog()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    environ: dict[str, str], expected: float | None
) -> None:
    """Pings go out at half of WATCHDOG_USEC, and only for the pid systemd named."""
    assert watchdog_interval(environ) == expected
