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


# --- when lower-casing agrees with the regex engine ------------------------------------
#
# The engine matches a literal case-insensitively by its simple lower-case mapping plus a
# table of extra equivalences ('s' and long s, 'i' and dotless i, Greek and Cyrillic
# variants); str.lower() uses the full mapping ('İ' becomes two characters, a final
# sigma depends on its neighbours). Where the two could disagree, a factor missing from
# the lower-cased text does not prove the pattern cannot match, so callers that need a
# proof ask ``folds_plainly`` of the patterns and ``is_plain`` of the text.

try:
    from re._casefix import _EXTRA_CASES  # type: ignore[import-not-found]

    _SIMPLE_LOWER: Any = __import__("_sre").unicode_tolower
except (ImportError, AttributeError):  # pragma: no cover - another Python: never claim a proof
    _EXTRA_CASES, _SIMPLE_LOWER = None, None


@functools.cache
def _plain_char(char: str) -> bool:
    """Whether ``char`` lowers to one character, its simple mapping, with no extra cases."""
    if _SIMPLE_LOWER is None or _EXTRA_CASES is None:
        return False
    lowered = char.lower()
    if len(lowered) != 1 or _SIMPLE_LOWER(ord(char)) != ord(lowered):
        return False
    # 'i' and 's' have extra cases (dotless i, long s) that are not plain themselves.
    return ord(lowered) not in _EXTRA_CASES or lowered in "is"


def is_plain(text: str) -> bool:
    """Whether every character of ``text`` lowers as the regex engine folds it (see above)."""
    return text.isascii() or all(_plain_char(char) for char in set(text))


@functools.cache
def folds_plainly(pattern: str) -> bool:
    """Whether every literal of ``pattern`` is plain, so that its factors are proof.

    For such a pattern and a plain text, a match implies that one of the pattern's
    factors is in the lower-cased matched text (not only in the lower-cased whole).
    """
    try:
        parsed = sre_parse.parse(pattern, re.IGNORECASE)
    except re.error:
        return False
    return all(_plain_char(chr(code)) for code in _literals(parsed))


def _literals(node: Any) -> set[int]:
    """Every LITERAL code point anywhere in a parsed pattern (nested groups included)."""
    found: set[int] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, sre_parse.SubPattern):
            stack.extend(item.data)
        elif isinstance(item, (list, tuple)):
            if len(item) == 2 and item[0] is c.LITERAL and isinstance(item[1], int):  # noqa: PLR2004 - an (op, arg) pair
                found.add(item[1])
            else:
                stack.extend(item)
    return found


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
