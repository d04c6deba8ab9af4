"""Every start-up failure is one line naming the config key and the problem, and an exit code."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.support.daemon import Site

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def run(site: Site) -> subprocess.CompletedProcess[bytes]:
    """``mail2case run`` on the site, expected to fail at start (bounded in time)."""
    cmd = [sys.executable, "-m", "mail2case.cli", "run", "--config", str(site.config)]
    return subprocess.run(cmd, capture_output=True, cwd=site.root, timeout=60, check=False)


def last_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The last line the command wrote to stderr (log lines may come before it)."""
    lines = [line for line in proc.stderr.decode().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def edited_site(root: Path, old: str, new: str) -> Site:
    """A site written in ``root`` whose config has its first ``old`` replaced by ``new``."""
    site = Site(root)
    site.write()
    text = site.config.read_text()
    assert old in text, old
    site.config.write_text(text.replace(old, new, 1))
    return site


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another program is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_smtp_port_in_use(tmp_path: Path, busy_port: int) -> None:
    """A second instance on a taken port: one line, exit 2, no traceback, nothing left running."""
    site = Site(tmp_path, smtp_port=busy_port)
    site.write()
    proc = run(site)
    assert proc.returncode == 2
    assert last_line(proc) == (
        f"mail2case: smtp.port: 127.0.0.1:{busy_port} is already in use (another instance?)"
    )
    assert b"Traceback" not in proc.stderr


def test_http_port_in_use(tmp_path: Path, busy_port: int) -> None:
    """The probes' port taken: named as http.port."""
    site = Site(tmp_path, extra=f"\n[http]\nport = {busy_port}\n")
    site.write()
    proc = run(site)
    assert proc.returncode == 2
    assert last_line(proc).startswith(f"mail2case: http.port: 127.0.0.1:{busy_port} is already")
    assert b"Traceback" not in proc.stderr


def test_a_host_that_is_not_ours(tmp_path: Path) -> None:
    """An address this machine does not have: named as smtp.host."""
    site = edited_site(tmp_path, 'host = "127.0.0.1"', 'host = "192.0.2.1"')
    proc = run(site)
    assert proc.returncode == 2
    assert last_line(proc) == "mail2case: smtp.host: 192.0.2.1 is not an address of this machine"


def test_a_bad_tls_certificate(tmp_path: Path) -> None:
    """A certificate file that is not one: named as smtp.tls_cert_file."""
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate\n")
    host = 'host = "127.0.0.1"'
    site = edited_site(tmp_path, host, f'{host}\ntls_cert_file = "{bad}"')
    proc = run(site)
    assert proc.returncode == 2
    assert last_line(proc).startswith("mail2case: smtp.tls_cert_file: cannot load the certificate")


def test_an_unreachable_database(tmp_path: Path) -> None:
    """A database that does not answer: named as database.url, exit 75 (systemd retries)."""
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free}/none?connect_timeout=2"
    site = edited_site(tmp_path, f'url = "sqlite:///{tmp_path / "cases.db"}"', f'url = "{url}"')
    proc = run(site)
    assert proc.returncode == 75
    assert last_line(proc).startswith("mail2case: database.url: unavailable:")


def test_check_config_warns_of_an_empty_team_address(tmp_path: Path) -> None:
    """Valid but quietly useless: check-config says notifications go nowhere (and exits 0)."""
    site = Site(tmp_path)
    site.write()
    proc = site.cli("check-config")
    assert "warning: agents.team_address is empty" in proc.stderr.decode()
    named = Site(tmp_path / "named", extra='\n[agents]\nteam_address = "team@example.com"\n')
    named.root.mkdir()
    named.write()
    assert "team_address" not in named.cli("check-config").stderr.decode()
