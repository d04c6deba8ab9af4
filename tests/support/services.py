"""Free ports and the skip-or-fail rule for real servers (REQUIRE_SERVICES=1 in CI)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE = os.environ.get("REQUIRE_SERVICES") == "1"
REPO = Path(__file__).resolve().parents[2]
# The folder CI keeps beside the checkout; MAIL2CASE_SHARED_DIR points elsewhere (an empty
# folder shows what a fresh clone without it runs).
SHARED = Path(os.environ.get("MAIL2CASE_SHARED_DIR") or REPO.parent / "shared")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing(what: str, hint: str) -> NoReturn:
    """Skip locally, fail in CI, when a real server the test needs is not installed."""
    msg = f"{what} not available ({hint})"
    if REQUIRE:
        pytest.fail(f"REQUIRE_SERVICES=1 but {msg}", pytrace=False)
    pytest.skip(msg)
