"""Notifications go to a customer's own team when one is configured, else the agents' team."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.e2e.test_spine import customer_mail
from tests.support.daemon import Site

if TYPE_CHECKING:
    from pathlib import Path


def test_customer_team_override(tmp_path: Path) -> None:
    """A case of a customer with team_address notifies that team; other cases notify the default."""
    site = Site(tmp_path)
    site.extra = (
        '[agents]\nteam_address = "team@support.example.com"\nreply_secret = "s3cret-key"\n'
        '[[customers]]\nname = "Acme"\ndomains = ["acme.example"]\n'
        'team_address = "acme-team@support.example.com"\n'
    )
    site.write()
    site.cli(
        "ingest",
        stdin=customer_mail("Acme problem", "Export fails.", sender="bob@acme.example").as_bytes(),
    )
    site.cli(
        "ingest",
        stdin=customer_mail(
            "Other problem", "Import fails.", sender="eve@other.example"
        ).as_bytes(),
    )
    rows = site.cli_json("outbox", "list")
    notified = {
        r["subject"].split(": ", 1)[1].split(" [")[0]: r["to"]
        for r in rows
        if r["kind"] == "notify"
    }
    assert notified == {
        "Acme problem": ["acme-team@support.example.com"],
        "Other problem": ["team@support.example.com"],
    }
