"""Literal strings a regular expression cannot match without: a cheap prefilter."""

from __future__ import annotations

import functools
import re
from re import _constants as c  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

# A factor shorter than this finds too much to be worth checking.
MIN_FACTOR = 3
Factor = frozenset[str]


@functools.cache
def required_factors(pattern: str) -> Factor | None:
    """Lower-cased strings of which every match of ``pattern`` contains at least one.

    None when no such set is known (the pattern must then always be run). Read from
    the parsed pattern: literal runs, groups, alternations whose every branch has a
    factor, and repeats of at least one. Used with re.IGNORECASE patterns and
    lower-cased text, so the strings are lower-cased.
    """
    try:
        parsed = sre_parse.parse(pattern, re.IGNORECASE)
    except re.error:
        return None
    return _best(_factors(list(parsed)))


def may_match(pattern: re.Pattern[str], lowered_text: str) -> bool:
    """False only when ``pattern`` certainly finds nothing in the lower-cased text."""
    factors = required_factors(pattern.pattern)
    return factors is None or any(f in lowered_text for f in factors)


def _factors(items: list[tuple[Any, Any]]) -> list[Factor]:
    found: list[Factor] = []
    run: list[str] = []
    for op, av in items:
        if op is c.LITERAL:
            run.append(chr(av))
            continue
        _close(run, found)
        run = []
        sub = _item_factor(op, av)
        if sub is not None:
            found.append(sub)
    _close(run, found)
    return found


def _close(run: list[str], found: list[Factor]) -> None:
    if run:
        found.append(frozenset({"".join(run).lower()}))


def _item_factor(op: Any, av: Any) -> Factor | None:
    if op is c.SUBPATTERN:
        return _best(_factors(list(av[-1])))
    if op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[0] >= 1:
        return _best(_factors(list(av[2])))
    if op is c.BRANCH:
        branches = [_best(_factors(list(branch))) for branch in av[1]]
        if any(b is None for b in branches):
            return None
        return frozenset().union(*(b for b in branches if b is not None))
    return None


def _best(factors: list[Factor]) -> Factor | None:
    """The most selective factor: the one whose shortest string is longest."""
    usable = [f for f in factors if f and min(map(len, f)) >= MIN_FACTOR]
    return max(usable, key=lambda f: (min(map(len, f)), -len(f)), default=None)
