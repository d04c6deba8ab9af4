"""The circuit breaker's decision, as a pure function."""

from __future__ import annotations

import pytest

from notifications.breaker import BreakerSettings, Counts, verdict
from storage.suppressions import is_system_address


@pytest.mark.parametrize(
    ("address", "machine"),
    [
        ("MAILER-DAEMON@example.com", True),
        ("postmaster@example.com", True),
        ("no-reply@shop.example", True),
        ("noreply+abc@shop.example", True),
        ("bounces-123@lists.example", True),
        ("noreen@example.com", False),
        ("postmasters-guild@example.com", False),
        ("ann@example.com", False),
    ],
)
def test_system_addresses(address: str, machine: bool) -> None:
    """Machine local parts are recognised; people whose names merely start alike are not."""
    assert is_system_address(address) is machine


def counts(suppressed: dict[str, str] | None = None, to: int = 0, case: int = 0) -> Counts:
    """Counts with defaults."""
    return Counts(suppressed or {}, to, case)


def test_free_row_goes() -> None:
    """Below every limit, with a person as recipient, the row may go."""
    assert verdict("ack", ["ann@x.example"], counts(), BreakerSettings()) is None


def test_one_usable_recipient_is_enough() -> None:
    """A row keeps going when at least one recipient is usable."""
    assert (
        verdict("relay", ["postmaster@x.example", "ann@x.example"], counts(), BreakerSettings())
        is None
    )


def test_limits() -> None:
    """The per-case limit applies to automatic mail, the per-recipient one to acks."""
    settings = BreakerSettings(per_recipient=2, per_case=3)
    assert verdict("notify", ["t@x.example"], counts(to=9), settings) is None
    assert verdict("ack", ["a@x.example"], counts(to=2), settings) is not None
    assert verdict("notify", ["t@x.example"], counts(case=3), settings) is not None


@pytest.mark.parametrize("kind", ["relay", "held_notice"])
def test_a_person_s_reply_is_never_braked_by_the_case_limit(kind: str) -> None:
    """A flood on a case stops robots' mail, not an agent's reply or the team's notice."""
    settings = BreakerSettings(per_case=3)
    assert verdict(kind, ["ann@x.example"], counts(case=300), settings) is None
    assert verdict(kind, ["postmaster@x.example"], counts(case=300), settings) is not None
