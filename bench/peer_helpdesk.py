"""IMAP end to end against a peer: mail2case and django-helpdesk on the same Dovecot and mix.

Both sides read the same seeded messages (``bench.mix``) from the same throwaway Dovecot
over plain IMAP, alternated in one run (``--runs``, the figure is the median):

* mail2case: exactly ``imap_e2e``'s settled figure: the daemon waits in IDLE on an empty
  folder, one ``UID MOVE`` lands the mix, timed until every message is settled (case or
  reply stored, acknowledgement queued, the message moved out of the folder);
* django-helpdesk: the mix APPENDed to a fresh folder that a helpdesk Queue reads, then one
  ``helpdesk.email.process_email()`` (what its ``get_email`` command runs from cron) timed
  from call to return: every message fetched, a ticket or a follow-up stored, the submitter
  mailed, the message deleted and expunged. It runs in a virtualenv of its own
  (``bench/.peer-venv``, made here with pip on first use; network needed only then), with
  Django's SQLite defaults; see ``bench.peer_helpdesk_runner``.

Each side is checked against the mix's headers: threads opened, replies threaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.databases import databases
from bench.imap_e2e import daemon_run, dovecot, mail2case_verdict, stage
from bench.mix import generate, stats
from bench.report import Figure, emit, median, mix_parser, parse_mix_args
from bench.threads import Expected, Verdict, bare_id, check, expected
from tests.support.dovecot import USERS

if TYPE_CHECKING:
    import argparse

    from bench.databases import Databases
    from tests.support.dovecot import DovecotServer

REPO = Path(__file__).resolve().parent.parent
PEER_VENV = REPO / "bench" / ".peer-venv"
REQUIREMENT = "django-helpdesk==2.6.1"
TARGET = ">= 6"


def peer_python(requirement: str, venv: Path = PEER_VENV) -> Path:
    """The peer virtualenv's interpreter, made (and ``requirement`` installed) when missing."""
    python, marker = venv / "bin" / "python", venv / "bench-requirement.txt"
    if python.exists() and marker.exists() and marker.read_text() == requirement:
        return python
    print(f"  setting up {venv} with {requirement} (pip, once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*pip, requirement], capture_output=True, check=False)
    if done.returncode != 0:
        # Printed only on failure: pip's configured extra indexes warn on every install.
        raise SystemExit(
            f"pip could not install {requirement} into {venv} (it needs the package index,"
            f" once):\n{done.stderr.decode(errors='replace')[-3000:]}"
        )
    marker.write_text(requirement)
    return python


def peer_versions(python: Path) -> dict[str, str]:
    """The versions the peer ran with, for the report."""
    code = (
        "import importlib.metadata as m, json, sys;"
        "print(json.dumps({p: m.version(p) for p in ('django-helpdesk', 'Django')}"
        " | {'python': sys.version.split()[0]}))"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, check=True)
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


@dataclass
class Peer:
    """django-helpdesk in its own interpreter, one fresh copy of a migrated database per run."""

    python: Path
    workdir: Path
    verbose: bool = False

    @property
    def template(self) -> Path:
        """The migrated, empty database each run starts from."""
        return self.workdir / "helpdesk-template.db"

    def call(self, command: str, options: dict[str, Any]) -> dict[str, Any]:
        """Run the runner's ``command``; its last output line, parsed."""
        done = subprocess.run(
            [str(self.python), "-m", "bench.peer_helpdesk_runner", command, json.dumps(options)],
            cwd=REPO,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"django-helpdesk {command} failed:\n{done.stderr.decode()[-3000:]}")
        if self.verbose:
            print(done.stderr.decode(errors="replace"), file=sys.stderr)
        result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        return result

    def prepare(self) -> None:
        """Migrate the template database once (Django's migrations take seconds)."""
        self.call("migrate", {"db": str(self.template)})

    def run(self, server: DovecotServer, mix: list[bytes], want: Expected) -> PeerRun:
        """One ``process_email()`` over the mix in a fresh folder and a fresh database."""
        folder = stage(server, mix)
        db = self.workdir / f"{folder}.db"
        shutil.copyfile(self.template, db)
        result = self.call(
            "process",
            {
                "db": str(db),
                "media": str(self.workdir / f"{folder}-media"),
                "host": server.host,
                "port": server.port,
                "user": "alice",
                "password": USERS["alice"],
                "folder": folder,
                "verbose": self.verbose,
            },
        )
        placed = {bare_id(mid): ticket for mid, ticket in result["placed"].items()}
        # It mails the submitter for a new ticket and for each follow-up alike.
        mails = int(result["mails_sent"])
        verdict = check("django-helpdesk", want, placed, mails, "mails sent (acks and updates)")
        left = len(server.messages(folder))
        return PeerRun(float(result["seconds"]), verdict, int(result["tickets"]), left)


@dataclass(frozen=True)
class PeerRun:
    """One peer run: seconds, the verdict, tickets in its database, messages left unhandled."""

    seconds: float
    verdict: Verdict
    tickets: int
    left_in_folder: int


def ours(dbs: Databases, workdir: Path, server: DovecotServer, mix: list[bytes]) -> float:
    """mail2case's settled rate for the mix (``imap_e2e``'s daemon run), after its check."""
    timings = daemon_run(dbs, workdir, server, mix)
    verdict = mail2case_verdict(timings.url, expected(mix))
    rate = len(mix) / timings.settled
    print(f"  {verdict.line()} ({rate:.1f} msgs/s)", flush=True)
    if not verdict.ok:
        raise SystemExit("mail2case did not thread the mix as its headers say")
    return rate


def parse_args() -> argparse.Namespace:
    """The mix options, and which django-helpdesk to install."""
    parser = mix_parser(__doc__)
    parser.add_argument("--peer", default=REQUIREMENT, help="pip requirement for the peer")
    parser.add_argument("--peer-verbose", action="store_true", help="the peer's log to stderr")
    return parse_mix_args(parser)


def main() -> None:
    args = parse_args()
    mix = generate(args.messages)
    want = expected(mix)
    python = peer_python(args.peer)
    our_rates: list[float] = []
    peer_runs: list[PeerRun] = []
    with (
        databases(args.db) as dbs,
        dovecot() as server,
        tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp,
    ):
        peer = Peer(python, Path(tmp), verbose=args.peer_verbose)
        peer.prepare()
        for i in range(args.runs):
            # Alternate which side goes first, so that a drift in load falls on both.
            if i % 2:
                peer_runs.append(_peer_run(peer, server, mix, want))
            our_rates.append(ours(dbs, Path(tmp), server, mix))
            if not i % 2:
                peer_runs.append(_peer_run(peer, server, mix, want))
    _report(args, mix, our_rates, peer_runs, peer_versions(python))
    if not all(r.verdict.ok for r in peer_runs):
        # The rates are printed all the same: how the peer went wrong is a finding too.
        raise SystemExit("django-helpdesk did not thread the mix as its headers say (see above)")


def _peer_run(peer: Peer, server: DovecotServer, mix: list[bytes], want: Expected) -> PeerRun:
    began = time.monotonic()
    run = peer.run(server, mix, want)
    print(
        f"  {run.verdict.line()} ({len(mix) / run.seconds:.1f} msgs/s; {run.tickets} tickets,"
        f" {run.left_in_folder} left in the folder; {time.monotonic() - began:.1f} s with set-up)",
        flush=True,
    )
    if run.verdict.placed == 0:
        raise SystemExit("django-helpdesk stored nothing: see its set-up above")
    return run


def _report(
    args: argparse.Namespace,
    mix: list[bytes],
    our_rates: list[float],
    peer_runs: list[PeerRun],
    versions: dict[str, str],
) -> None:
    peer_rates = [len(mix) / r.seconds for r in peer_runs]
    figure = Figure(
        name="IMAP vs django-helpdesk",
        ours=median(our_rates),
        baseline=median(peer_rates),
        unit="msgs/s",
        ratio=median(our_rates) / median(peer_rates),
        runs=args.runs,
        target=TARGET,
        ours_label=f"mail2case ({args.db}, Dovecot to case + ack queued)",
        baseline_label=f"django-helpdesk {versions.get('django-helpdesk', '?')} process_email()",
        extra={
            "ours_runs": our_rates,
            "peer_runs": peer_rates,
            "peer_verdicts": [asdict(r.verdict) | {"ok": r.verdict.ok} for r in peer_runs],
            "peer": versions,
        },
    )
    emit("peer_helpdesk", [figure], db=args.db, mix=stats(mix), run_id=uuid.uuid4().hex[:8])


if __name__ == "__main__":
    main()
