"""The shipped systemd unit passes ``systemd-analyze verify`` and keeps its promised settings."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

from tests.support.services import REPO, missing

if TYPE_CHECKING:
    from pathlib import Path

UNIT = REPO / "deploy" / "mail2case.service"
EXEC = "/opt/mail2case/.venv/bin/mail2case"


def settings() -> dict[str, list[str]]:
    """Every key of the unit file with its values, in order."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit with no warning at all."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing("systemd-analyze", "scripts/test-services.sh installs Debian's systemd package")
    # verify checks that ExecStart exists: point it at a stand-in, change nothing else.
    stand_in = tmp_path / "mail2case"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "mail2case.service"
    unit.write_text(UNIT.read_text().replace(EXEC, str(stand_in)))
    proc = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_unit_promises() -> None:
    """Notify type with a watchdog, reload by SIGHUP, port 25 without root, strict hardening."""
    s = settings()
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] == ["30"]
    assert s["ExecStart"] == [f"{EXEC} run --config /etc/mail2case/config.toml"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"]
    assert s["AmbientCapabilities"] == s["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert s["User"] == ["mail2case"]
    assert s["StateDirectory"] == ["mail2case"]
    assert s["WorkingDirectory"] == ["/var/lib/mail2case"]
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges"):
        assert s[key] == ["yes"]
    assert s["ProtectSystem"] == ["strict"]
    assert s["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert s["SystemCallFilter"][0] == "@system-service"
