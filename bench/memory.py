"""Peak memory of parsing and processing one 25 MB message with attachments, vs its size."""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.databases import databases
from bench.processing_cpu import commit_mix
from bench.report import add_run_options, compared, descendants, emit, median


def big_message(size: int, seed: int = 25) -> bytes:
    """A customer mail of about ``size`` bytes: some text and three base64 attachments."""
    rng = random.Random(seed)
    head = (
        "From: Customer <customer@client.example>\r\nTo: support@example.com\r\n"
        "Subject: Logs and dumps from the outage\r\nDate: Mon, 03 Jun 2024 08:00:00 +0000\r\n"
        "Message-ID: <big.1@client.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Production is down since 8:00, all users affected. Logs attached.\r\n"
    ).encode("ascii")
    # base64 grows data by 4/3 and line ends add 2 bytes per 76 characters.
    each = int((size - len(head)) / 3 / (4 / 3) / (78 / 76))
    parts = [
        (
            f"--b\r\nContent-Type: application/octet-stream; name=dump{n}.bin\r\n"
            f"Content-Disposition: attachment; filename=dump{n}.bin\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode("ascii")
        + base64.encodebytes(rng.randbytes(each)).replace(b"\n", b"\r\n")
        for n in range(3)
    ]
    return head + b"".join(parts) + b"--b--\r\n"


def child(mode: str, url: str) -> None:
    """In a fresh process: set up as the daemon does, process the row (or not), print peak RSS."""
    from mail2case import app  # noqa: PLC0415 - the child pays for its imports itself
    from mail2case.config.settings import config_from_mapping  # noqa: PLC0415
    from mail2case.log_setup import configure_logging  # noqa: PLC0415

    configure_logging("info", "json", open(os.devnull, "w"))  # noqa: SIM115, PTH123 - whole run
    config = config_from_mapping({"database": {"url": url}, "support": {"address": "s@x.example"}})
    engine, sessions = app.open_database(config, upgrade=False)
    processor = app.build_processor(config, sessions)
    if mode == "process" and processor.run_once(datetime.now(UTC)) != 1:
        raise SystemExit("the message was not processed")
    # The analysis may run in a worker process: its peak counts too (a sum of peaks, so
    # an upper bound of the pair's peak at any one moment).
    workers = sum(_peak_of(pid) for pid in descendants(os.getpid()))
    engine.dispose()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"maxrss": own + workers}))


def _peak_of(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, in bytes; 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) * 1024


def peak(mode: str, url: str) -> int:
    """Peak RSS in bytes of a child in ``mode`` ("idle" or "process")."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", mode, url],
        capture_output=True,
        check=True,
    )
    return int(json.loads(done.stdout.decode().splitlines()[-1])["maxrss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=25 * 1024 * 1024)
    add_run_options(parser, runs=3)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.quick:
        args.size, args.runs = 1024 * 1024, 1
    raw = big_message(args.size)
    deltas, idles = [], []
    with databases("sqlite") as dbs:
        for _ in range(args.runs):
            url = dbs.fresh()
            commit_mix(url, [raw])
            idle = peak("idle", url)
            deltas.append(peak("process", url) - idle)
            idles.append(idle)
    mb = 1024 * 1024
    figure = compared(
        "peak memory of parse + process, minus the idle child",
        deltas,
        [len(raw)],
        scale=1 / mb,
        unit="MB",
        runs=args.runs,
        target="< 5",
        ours_label="peak RSS growth",
        baseline_label="message size",
        extra={"idle_child_mb": round(median(idles) / mb, 1)},
    )
    emit("memory", [figure])


if __name__ == "__main__":
    main()
