"""SMTP load: N client connections sending a mix, and a do-nothing aiosmtpd server to compare."""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP

if TYPE_CHECKING:
    from collections.abc import Sequence

SUPPORT = "support@example.com"


@dataclass
class Load:
    """What the clients measured: seconds from first connect to last 250, and each latency."""

    began: float = 0.0  # perf_counter at the first connect
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    deferred: int = 0  # 4xx answers: the message was sent again, as an MTA would
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def percentile(self, share: float) -> float:
        """The latency at ``share`` (0.5, 0.99), in seconds."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def send_all(port: int | Sequence[int], mix: list[bytes], connections: int) -> Load:
    """Send ``mix`` over ``connections`` parallel sessions (round robin); time DATA to 250.

    With several ports (instances of the daemon), session i connects to port i mod n.
    """
    load = Load()
    ports = [port] if isinstance(port, int) else list(port)
    queues = [mix[i::connections] for i in range(connections)]
    start = threading.Barrier(connections + 1)
    threads = [
        threading.Thread(target=_client, args=(ports[i % len(ports)], q, load, start), daemon=True)
        for i, q in enumerate(queues)
    ]
    for t in threads:
        t.start()
    start.wait()
    load.began = time.perf_counter()
    for t in threads:
        t.join()
    load.seconds = time.perf_counter() - load.began
    if load.errors:
        raise SystemExit(f"{len(load.errors)} SMTP errors, first: {load.errors[0]}")
    return load


def _client(port: int, queue: list[bytes], load: Load, start: threading.Barrier) -> None:
    start.wait()
    latencies: list[float] = []
    deferred = 0
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            smtp.ehlo("bench.example")
            for raw in queue:
                while not _deliver(smtp, raw, latencies):
                    deferred += 1
                    time.sleep(0.05)
    except (OSError, smtplib.SMTPException) as exc:
        with load.lock:
            load.errors.append(repr(exc))
    with load.lock:
        load.latencies += latencies
        load.deferred += deferred


def _deliver(smtp: smtplib.SMTP, raw: bytes, latencies: list[float]) -> bool:
    """One transaction; False on a 4xx (try again), an exception on a 5xx."""
    smtp.mail("customer@client.example")
    smtp.rcpt(SUPPORT)
    began = time.perf_counter()
    code, reply = smtp.data(raw)
    latencies.append(time.perf_counter() - began)
    if 400 <= code < 500:
        return False
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)
    return True


class NullHandler:
    """Accepts every message and keeps nothing: the receive rate's upper bound."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        """Answer 250 at once."""
        del server, session, envelope
        return "250 2.0.0 OK"


async def serve_null(port: int) -> None:
    """Run the do-nothing server on 127.0.0.1:``port`` until killed."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(NullHandler(), data_size_limit=50 * 1024 * 1024, enable_SMTPUTF8=True),
        host="127.0.0.1",
        port=port,
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="the do-nothing aiosmtpd server")
    parser.add_argument("port", type=int)
    asyncio.run(serve_null(parser.parse_args().port))


if __name__ == "__main__":
    main()
