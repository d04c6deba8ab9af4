"""The circuit breaker for all automatic mail: which recipients a row may still go to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# One rule for machines, shared with the case step (which asks it before queueing an ack).
from storage.suppressions import is_system_address

# Mail that answers a customer automatically; the per-recipient limit applies to these.
CUSTOMER_FACING = frozenset({"ack"})
# Mail a person wrote (an agent's relayed reply), and the team's notice of a held row:
# the per-case limit brakes robots, so a flood of mail on a case never silences them.
EXEMPT_FROM_CASE_LIMIT = frozenset({"relay", "held_notice"})


@dataclass(frozen=True)
class BreakerSettings:
    """Limits in time windows; ``window`` is the length of each window."""

    per_recipient: int = 5
    per_case: int = 30
    window: timedelta = timedelta(hours=1)
    bounce_suppression: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class Counts:
    """What the database says about a row's recipients and case, for one decision."""

    suppressed: dict[str, str]
    sent_to_first_recipient: int
    sent_for_case: int


def verdict(
    kind: str, recipients: list[str], counts: Counts, settings: BreakerSettings
) -> str | None:
    """Why the row must not be sent, or None when it may go (to the recipients left).

    A row whose every recipient is a machine or a bounced address is held; so is
    automatic mail past the per-case limit (a loop between two robots runs through one
    case; a person's relayed reply is never braked by it), and an acknowledgement past
    the per-recipient limit (a robot writing to us repeatedly).
    """
    usable = [
        r for r in recipients if not is_system_address(r) and r.lower() not in counts.suppressed
    ]
    if not usable:
        reasons = [counts.suppressed.get(r.lower(), "system address") for r in recipients]
        return "no usable recipient: " + "; ".join(
            f"{r}: {why}" for r, why in zip(recipients, reasons, strict=True)
        )
    if kind not in EXEMPT_FROM_CASE_LIMIT and counts.sent_for_case >= settings.per_case:
        return f"per-case limit: {counts.sent_for_case} mails in {_words(settings.window)}"
    if kind in CUSTOMER_FACING and counts.sent_to_first_recipient >= settings.per_recipient:
        sent = counts.sent_to_first_recipient
        return f"per-recipient limit: {sent} automatic replies in {_words(settings.window)}"
    return None


def usable_recipients(recipients: list[str], counts: Counts) -> list[str]:
    """The recipients that are neither machines nor suppressed."""
    return [
        r for r in recipients if not is_system_address(r) and r.lower() not in counts.suppressed
    ]


def _words(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} hour" + ("" if hours == 1 else "s")
