"""Detect the policy's features (environment, symptom, scope, workaround, request) in text."""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ingest.priority.literal_factors import folds_plainly, is_plain, required_factors

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

__all__ = [
    "FEATURES",
    "INCIDENT_FEATURES",
    "Evidence",
    "Hit",
    "LazyPattern",
    "PatternLike",
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


class PatternLike(Protocol):
    """What the rules need of a pattern: its source and a search (``re.Pattern`` has both)."""

    @property
    def pattern(self) -> str:
        """The source of the regular expression."""

    def search(self, string: str, /) -> re.Match[str] | None:
        """The first match in ``string``, or None."""


Patterns = tuple[PatternLike, ...]


class LazyPattern:
    """A case-insensitive regular expression, compiled when first searched.

    The shipped rules are ~1,700 patterns, a fifth of a second to compile, and a
    message's text holds the words of a few dozen of them: a process that analyses one
    message (a piped one) compiles those, and a long-lived one compiles each once.
    Pickles as its source.
    """

    __slots__ = ("_compiled", "pattern", "search")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled: re.Pattern[str] | None = None
        # Until the first search, ``search`` compiles; from then on it *is* the compiled
        # pattern's search, so a search costs what it costs on ``re.Pattern``.
        self.search: Callable[[str], re.Match[str] | None] = self._first_search

    def _first_search(self, string: str, /) -> re.Match[str] | None:
        compiled = self._compiled = re.compile(self.pattern, re.IGNORECASE)
        self.search = compiled.search
        return compiled.search(string)

    def __reduce__(self) -> tuple[type[LazyPattern], tuple[str]]:
        return (LazyPattern, (self.pattern,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LazyPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"LazyPattern({self.pattern!r})"


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
    plan = _plan(features)
    found: dict[str, list[Hit]] = {name: [] for name in features}
    joined = "\n".join(parts)
    lowered = joined.lower()
    # Most of the ~700 patterns cannot match this mail at all: their factors are not
    # in the text. Where lower-casing provably agrees with the engine, the same holds
    # per sentence, so a pattern runs only on the sentences holding one of its factors.
    if plan.folds_plainly and is_plain(joined):
        candidates = plan.candidates_by_sentence(parts, lowered)
    else:
        candidates = [plan.candidates(lowered)] * len(parts)
    for index, sentence in enumerate(parts):
        checks = candidates[index]
        hypothetical = next(
            (
                match
                for i in checks
                if plan.names[i] == "hypothetical" and (match := plan.patterns[i].search(sentence))
            ),
            None,
        )
        if hypothetical is not None:
            found["hypothetical"].append(Hit(index, _quote(sentence, hypothetical, width)))
        done = -1  # the last feature found in this sentence
        for i in checks:
            feature = plan.feature_index[i]
            name = plan.names[i]
            if feature == done or name == "hypothetical":
                continue
            if hypothetical is not None and name in INCIDENT_FEATURES:
                continue
            match = plan.patterns[i].search(sentence)
            if match is not None:
                done = feature  # the first pattern of a feature to match gives the quote
                found[name].append(Hit(index, _quote(sentence, match, width)))
    return Evidence({name: tuple(hits) for name, hits in found.items()})


@dataclass(frozen=True, slots=True)
class _Plan:
    """Every feature pattern in one list (feature order, then pattern order), indexed.

    A check is a position in that list; checks whose pattern has no factor always run.
    """

    names: tuple[str, ...]  # the feature of each check
    feature_index: tuple[int, ...]  # the same as a number
    patterns: Patterns
    always: frozenset[int]
    # Finds, at each place where a factor starts, the longest factor starting there;
    # the factors that start there too are its prefixes, so each longest factor maps to
    # the checks of all its prefixes. None when no pattern has a factor.
    longest: re.Pattern[str] | None
    by_longest: Mapping[str, frozenset[int]]
    folds_plainly: bool  # lower-casing agrees with the engine on every literal

    def _occurrences(self, lowered: str) -> Iterator[tuple[int, str]]:
        """Where factors start in the lower-cased text, with the longest one starting there."""
        if self.longest is None:
            return
        search = self.longest.search
        match = search(lowered)
        while match is not None:
            at = match.start()
            yield at, match.group()
            match = search(lowered, at + 1)

    def candidates(self, lowered: str) -> list[int]:
        """The checks that may match the lower-cased text, in order."""
        found = set(self.always)
        for longest in {factor for _, factor in self._occurrences(lowered)}:
            found.update(self.by_longest[longest])
        return sorted(found)

    def candidates_by_sentence(self, parts: list[str], lowered: str) -> list[list[int]]:
        """For each sentence, the checks whose factors it holds (``lowered`` joins them).

        Valid only when lower-casing is per character (plain text): offsets in
        ``lowered`` are then offsets in the joined sentences.
        """
        starts = list(itertools.accumulate((len(part) + 1 for part in parts), initial=0))
        found = [set(self.always) for _ in parts]
        for at, longest in self._occurrences(lowered):
            found[bisect.bisect_right(starts, at) - 1].update(self.by_longest[longest])
        return [sorted(checks) for checks in found]


def prepare(features: Mapping[str, Patterns]) -> None:
    """Build (and cache) the detection plan for ``features`` ahead of the first message."""
    _plan(features)


_PLANS: dict[int, tuple[Mapping[str, Patterns], _Plan]] = {}
_MAX_PLANS = 16


def _plan(features: Mapping[str, Patterns]) -> _Plan:
    """The plan for ``features``, cached by identity (rules are built once and kept)."""
    cached = _PLANS.get(id(features))
    if cached is not None and cached[0] is features:
        return cached[1]
    checks = [
        (number, name, pattern, required_factors(pattern.pattern))
        for number, (name, patterns) in enumerate(features.items())
        for pattern in patterns
    ]
    by_factor: dict[str, set[int]] = {}
    for index, (_, _, _, factors) in enumerate(checks):
        for factor in factors or ():
            by_factor.setdefault(factor, set()).add(index)
    by_longest = {
        factor: frozenset().union(
            *(by_factor.get(factor[:end], ()) for end in range(1, len(factor) + 1))
        )
        for factor in by_factor
    }
    plan = _Plan(
        names=tuple(name for _, name, _, _ in checks),
        feature_index=tuple(number for number, _, _, _ in checks),
        patterns=tuple(pattern for _, _, pattern, _ in checks),
        always=frozenset(i for i, (_, _, _, factors) in enumerate(checks) if factors is None),
        longest=_longest_first(by_factor) if by_factor else None,
        by_longest=by_longest,
        folds_plainly=all(folds_plainly(p.pattern) for _, _, p, _ in checks),
    )
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[id(features)] = (features, plan)
    return plan


def _longest_first(words: Iterable[str]) -> re.Pattern[str]:
    """A pattern matching the longest of ``words`` that starts where it is tried.

    Built as a trie ('ab(?:c|d(?:e)?)'), so the engine follows one branch per character
    instead of trying every word; the optional tails are greedy, so the longest wins.
    """
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here
    return re.compile(_trie(root))


def _trie(node: dict[str, Any]) -> str:
    branches = [re.escape(char) + _trie(child) for char, child in sorted(node.items()) if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
    return f"(?:{body})?" if "" in node else body


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
