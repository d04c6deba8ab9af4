"""Literal strings a regular expression cannot match without: a cheap prefilter.

The factors are read from the pattern as CPython's own regex parser sees it: the private
``re._parser`` (``parse`` and ``SubPattern``) and ``re._constants`` (the opcodes
``LITERAL``, ``SUBPATTERN``, ``MAX_REPEAT``, ``MIN_REPEAT``, ``BRANCH``), as in CPython
3.11 to 3.13. Another Python may lack them or shape them otherwise: ``load_parser`` then
finds no parser, a pattern that does not read as expected has no factors, and there is
no prefilter. Every pattern is tried: the same result at about ten times the priority
inference's CPU (0.45 against 5.1 ms per mail on bench/data, December 2026).
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

# A factor shorter than this finds too much to be worth checking.
MIN_FACTOR = 3
Factor = frozenset[str]


@dataclass(frozen=True)
class SreParser:
    """The parts of CPython's private regex parser the factors are read with."""

    parse: Callable[[str, int], Any]
    subpattern: type[Any]
    literal: Any
    group: Any
    max_repeat: Any
    min_repeat: Any
    branch: Any


def load_parser(import_module: Callable[[str], Any] = importlib.import_module) -> SreParser | None:
    """CPython's regex parser if it is there and reads a known pattern as expected, else None."""
    try:
        parser, constants = import_module("re._parser"), import_module("re._constants")
        sre = SreParser(
            parse=parser.parse,
            subpattern=parser.SubPattern,
            literal=constants.LITERAL,
            group=constants.SUBPATTERN,
            max_repeat=constants.MAX_REPEAT,
            min_repeat=constants.MIN_REPEAT,
            branch=constants.BRANCH,
        )
    except (ImportError, AttributeError):
        return None
    return sre if _reads_as_expected(sre) else None


# A pattern with every construct the factors are read from (a literal run, a group, an
# alternation, greedy and lazy repeats), and what must be read from it.
_PROBE = r"(?:disks|volumes) \d+? (err(?:ed|ing))+"
_PROBE_FACTORS = frozenset({"disks", "volumes"})
_PROBE_LITERALS = frozenset(map(ord, "disks volumes erred erring"))


def _reads_as_expected(sre: SreParser) -> bool:
    """Whether ``sre`` reads the probe as this module expects (another shape: False)."""

    def read() -> bool:
        parsed = sre.parse(_PROBE, re.IGNORECASE)
        found = _best(_factors(sre, list(parsed)))
        return found == _PROBE_FACTORS and _literals(sre, parsed) == _PROBE_LITERALS

    return _attempt(read, otherwise=False)


def _attempt(read: Callable[[], T], *, otherwise: T) -> T:
    """``read()``, or ``otherwise`` when it fails (a pattern ``re`` refuses, another parser)."""
    try:
        return read()
    except Exception:  # noqa: BLE001 - a private parser of another shape may fail in any way
        return otherwise


@functools.cache
def required_factors(pattern: str) -> Factor | None:
    """Lower-cased strings of which every match of ``pattern`` contains at least one.

    None when no such set is known (the pattern must then always be run). Read from
    the parsed pattern: literal runs, groups, alternations whose every branch has a
    factor, and repeats of at least one. Used with re.IGNORECASE patterns and
    lower-cased text, so the strings are lower-cased.
    """
    return _read(pattern)[0]


@functools.cache
def _read(pattern: str) -> tuple[Factor | None, frozenset[int] | None]:
    """The factors of ``pattern`` and every literal code point in it, from one parse.

    (None, None) without the parser, or when it fails on the pattern. One parse for
    both: a detection plan reads ~1,700 patterns, and a parse is most of the cost of
    building it (measured: three parses a pattern, with its compiling, were a third of
    a piped message's time).
    """
    sre = _SRE
    if sre is None:
        return None, None

    def read() -> tuple[Factor | None, frozenset[int] | None]:
        parsed = sre.parse(pattern, re.IGNORECASE)
        return _best(_factors(sre, list(parsed))), frozenset(_literals(sre, parsed))

    unknown: tuple[Factor | None, frozenset[int] | None] = (None, None)
    return _attempt(read, otherwise=unknown)


def forget() -> None:
    """Drop every answer read with the parser in use (tests that swap the parser)."""
    _read.cache_clear()
    required_factors.cache_clear()
    folds_plainly.cache_clear()


class Sourced(Protocol):
    """A pattern object: ``re.Pattern``, or the rules' ``LazyPattern``."""

    @property
    def pattern(self) -> str:
        """The source of the regular expression."""


def may_match(pattern: Sourced, lowered_text: str) -> bool:
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
    False without the regex parser: nothing is proved, every pattern runs.
    """
    literals = _read(pattern)[1]
    return literals is not None and all(_plain_char(chr(code)) for code in literals)


def _literals(sre: SreParser, node: Any) -> set[int]:
    """Every LITERAL code point anywhere in a parsed pattern (nested groups included)."""
    found: set[int] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, sre.subpattern):
            stack.extend(item.data)
        elif isinstance(item, (list, tuple)):
            if len(item) == 2 and item[0] is sre.literal and isinstance(item[1], int):  # noqa: PLR2004 - an (op, arg) pair
                found.add(item[1])
            else:
                stack.extend(item)
    return found


def _factors(sre: SreParser, items: list[tuple[Any, Any]]) -> list[Factor]:
    found: list[Factor] = []
    run: list[str] = []
    for op, av in items:
        if op is sre.literal:
            run.append(chr(av))
            continue
        _close(run, found)
        run = []
        sub = _item_factor(sre, op, av)
        if sub is not None:
            found.append(sub)
    _close(run, found)
    return found


def _close(run: list[str], found: list[Factor]) -> None:
    if run:
        found.append(frozenset({"".join(run).lower()}))


def _item_factor(sre: SreParser, op: Any, av: Any) -> Factor | None:
    if op is sre.group:
        return _best(_factors(sre, list(av[-1])))
    if op in (sre.max_repeat, sre.min_repeat) and av[0] >= 1:
        return _best(_factors(sre, list(av[2])))
    if op is sre.branch:
        branches = [_best(_factors(sre, list(branch))) for branch in av[1]]
        if any(b is None for b in branches):
            return None
        return frozenset().union(*(b for b in branches if b is not None))
    return None


def _best(factors: list[Factor]) -> Factor | None:
    """The most selective factor: the one whose shortest string is longest."""
    usable = [f for f in factors if f and min(map(len, f)) >= MIN_FACTOR]
    return max(usable, key=lambda f: (min(map(len, f)), -len(f)), default=None)


# Last: reading the probe needs the functions above.
_SRE = load_parser()
