"""Authentication-Results (RFC 8601) parsing and the DKIM/DMARC verdict for agents' mail."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.agents.authentication import (
    MethodResult,
    authentication_verdict,
    parse_authentication_results,
)

TRUSTED = ["mx.team.example"]


def test_parse_full_header() -> None:
    """Versions, comments, quoted reasons with ';' and spaced '=' are all understood."""
    parsed = parse_authentication_results(
        "MX.Team.example 1; (checked) dkim=pass (good) header.d=Team.example header.s=s1; "
        'spf=fail smtp.mailfrom=x@y; dmarc = pass reason="a; b" header.from=team.example'
    )
    assert parsed is not None
    assert parsed.authserv_id == "mx.team.example"
    assert parsed.results == (
        MethodResult("dkim", "pass", (("header.d", "team.example"), ("header.s", "s1"))),
        MethodResult("spf", "fail", (("smtp.mailfrom", "x@y"),)),
        MethodResult("dmarc", "pass", (("reason", "a; b"), ("header.from", "team.example"))),
    )


@pytest.mark.parametrize(
    ("headers", "domain", "expected"),
    [
        (["mx.team.example; dkim=pass header.d=team.example"], "team.example", True),
        (["mx.team.example; dkim=pass header.d=team.example"], "eu.team.example", True),
        (["mx.team.example; dkim=pass header.i=@team.example"], "team.example", True),
        (["mx.team.example; dmarc=pass header.from=team.example"], "team.example", True),
        (["mx.team.example; dmarc=pass"], "team.example", False),
        (["mx.team.example; dmarc=pass header.from=evil.example"], "team.example", False),
        (["mx.team.example; dkim=pass header.d=com"], "team.com", False),
        (["mx.team.example; dkim=pass header.d=co.uk"], "team.co.uk", False),
        (["mx.team.example; dkim=pass header.d=team.co.uk"], "mail.team.co.uk", True),
        (["mx.team.example; dkim=pass header.d=other.co.uk"], "team.co.uk", False),
        (["mx.team.example; dkim=pass header.d=evil.example"], "team.example", False),
        (["mx.team.example; dkim=pass header.d=eu.team.example"], "team.example", True),
        (["mx.team.example; dkim=fail header.d=team.example"], "team.example", False),
        (["mx.team.example; dkim=pass"], "team.example", False),
        (["mx.team.example; spf=pass smtp.mailfrom=team.example"], "team.example", False),
        (["mx.team.example; none"], "team.example", False),
        (["evil.example; dkim=pass header.d=team.example"], "team.example", False),
        ([], "team.example", False),
        (
            [
                "mx.team.example; dkim=fail header.d=team.example",
                "mx.team.example; dkim=pass header.d=team.example",
            ],
            "team.example",
            False,
        ),
        (
            [
                "other.example; dkim=fail",
                "mx.team.example; dmarc=pass header.from=team.example",
            ],
            "team.example",
            True,
        ),
    ],
)
def test_verdict_table(headers: list[str], domain: str, expected: bool) -> None:
    """Only the topmost trusted header counts, and only a DKIM or DMARC pass for the domain."""
    verdict = authentication_verdict(headers, TRUSTED, domain)
    assert verdict.is_authenticated is expected
    assert verdict.reason


@given(st.text(max_size=200))
def test_parser_is_total(value: str) -> None:
    """Any header text parses or is rejected without raising."""
    parsed = parse_authentication_results(value)
    assert parsed is None or parsed.authserv_id
