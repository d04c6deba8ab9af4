"""Fixtures of the end-to-end suite: the daemon on the module's own ``site``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.daemon import Daemon

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.daemon import Site


@pytest.fixture
def daemon(site: Site) -> Iterator[Daemon]:
    """The daemon running on the site, stopped with SIGTERM afterwards (exit 0 expected)."""
    d = Daemon(site).start()
    yield d
    assert d.stop() == 0
