"""Detect the policy's features (environment, symptom, scope, workaround, request) in text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest.literal_factors import may_match

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "FEATURES",
    "INCIDENT_FEATURES",
    "Evidence",
    "Hit",
    "Patterns",
    "detect",
    "environment_near",
]

FEATURES = (
    "production",
    "non_production",
    "production_unaffected",
    "outage",
    "degradation",
    "data_integrity",
    "security_exposure",
    "malfunction",
    "restore_failure",
    "broad_scope",
    "narrow_scope",
    "severe_impact",
    "limited_impact",
    "data_intact",
    "display_only",
    "no_workaround",
    "workaround",
    "customer_side",
    "feature_request",
    "enhancement_wish",
    "how_to",
    "resolved",
    "still_broken",
    "hypothetical",
    "admin",
)
# Features that report an incident; a hypothetical sentence ("if we ever lost ...")
# reports none.
INCIDENT_FEATURES = frozenset(
    {
        "outage",
        "degradation",
        "data_integrity",
        "security_exposure",
        "malfunction",
        "restore_failure",
        "severe_impact",
    }
)
Patterns = tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class Hit:
    """One feature found in one sentence: where (0 is the subject) and what to quote."""

    index: int
    quote: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """Every sentence each feature was found in, in reading order."""

    hits: Mapping[str, tuple[Hit, ...]]

    def has(self, *names: str) -> bool:
        """Whether any of ``names`` was found anywhere."""
        return any(self.hits.get(name) for name in names)

    def first(self, name: str) -> Hit | None:
        """The first sentence ``name`` was found in, or None."""
        found = self.hits.get(name)
        return found[0] if found else None

    def quote(self, name: str) -> str:
        """The first quote for ``name``, or an empty string."""
        hit = self.first(name)
        return hit.quote if hit else ""

    def at(self, name: str, index: int) -> bool:
        """Whether ``name`` was found in sentence ``index``."""
        return any(hit.index == index for hit in self.hits.get(name, ()))

    def all(self, name: str) -> tuple[Hit, ...]:
        """Every hit of ``name``."""
        return self.hits.get(name, ())


def detect(parts: list[str], features: Mapping[str, Patterns], width: int) -> Evidence:
    """Search each sentence for each feature; hypothetical sentences report no incident."""
    found: dict[str, list[Hit]] = {name: [] for name in features}
    # Most of the ~700 patterns cannot match this mail at all: a substring test on the
    # whole text rules them out before any regex runs per sentence (the profile: 36%).
    lowered = "\n".join(parts).lower()
    present = {
        name: kept
        for name, patterns in features.items()
        if (kept := tuple(p for p in patterns if may_match(p, lowered)))
    }
    for index, sentence in enumerate(parts):
        is_hypothetical = _search(sentence, present.get("hypothetical", ())) is not None
        for name, patterns in present.items():
            if is_hypothetical and name in INCIDENT_FEATURES:
                continue
            match = _search(sentence, patterns)
            if match is not None:
                found[name].append(Hit(index, _quote(sentence, match, width)))
    return Evidence({name: tuple(hits) for name, hits in found.items()})


def _search(sentence: str, patterns: Patterns) -> re.Match[str] | None:
    return next((m for p in patterns if (m := p.search(sentence))), None)


def _quote(sentence: str, match: re.Match[str], width: int) -> str:
    """The part of ``sentence`` around ``match``, at most ``width`` characters."""
    if len(sentence) <= width:
        return sentence
    start = max(0, min(match.start() - width // 3, len(sentence) - width))
    return ("…" if start else "") + sentence[start : start + width].strip() + "…"


def environment_near(ev: Evidence, index: int) -> tuple[str, Hit] | None:
    """The environment mentioned nearest to sentence ``index``; production wins a tie.

    A sentence saying production is fine counts as a non-production mention: it
    places the problem elsewhere, and its own 'production' is not the problem's.
    """
    # On a tie, production wins unless the email says production is fine.
    tie = 2 if ev.has("production_unaffected") else 0
    mentions: list[tuple[int, int, str, Hit]] = [
        (abs(hit.index - index), tie, "production", hit)
        for hit in ev.all("production")
        if not ev.at("production_unaffected", hit.index)
    ]
    mentions += [
        (abs(hit.index - index), 1, "non-production", hit)
        for name in ("non_production", "production_unaffected")
        for hit in ev.all(name)
    ]
    if not mentions:
        return None
    _, _, environment, hit = min(mentions, key=lambda m: (m[0], m[1], m[3].index))
    return environment, hit
