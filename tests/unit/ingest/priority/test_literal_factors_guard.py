"""Without CPython's private regex parser, or with one of another shape, there is no prefilter.

``ingest.priority.literal_factors`` reads factors with ``re._parser``; these tests take
it away or change it, and check that nothing crashes and every pattern is then tried,
with the same priority decisions as with the prefilter.
"""

from __future__ import annotations

import importlib
import json
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from ingest.priority import literal_factors
from ingest.priority.features import _PLANS
from ingest.priority.inference import PriorityRules, infer_priority
from ingest.priority.literal_factors import (
    SreParser,
    folds_plainly,
    load_parser,
    may_match,
    required_factors,
)
from tests.support.services import REPO

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ingest.priority.inference import PriorityDecision

RULES = PriorityRules.default()


def forget() -> None:
    """Drop every answer read with the parser in use (factors, proofs, detection plans)."""
    literal_factors.forget()
    _PLANS.clear()


def real_modules() -> tuple[Any, Any]:
    """CPython's own re._parser and re._constants."""
    return importlib.import_module("re._parser"), importlib.import_module("re._constants")


def importer(parser: Any, constants: Any) -> Callable[[str], Any]:
    """An import_module that hands out these two modules in place of the real ones."""
    return {"re._parser": parser, "re._constants": constants}.__getitem__


@pytest.fixture
def no_parser(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The module as imported on a Python without the parser it expects."""
    monkeypatch.setattr(literal_factors, "_SRE", None)
    forget()
    yield
    monkeypatch.undo()
    forget()


def test_cpython_parser_is_found_here() -> None:
    """On this CPython the parser is there and reads as expected: the prefilter is on."""
    assert isinstance(load_parser(), SreParser)
    assert required_factors(r"\bsandbox(es)?\b") == frozenset({"sandbox"})


def test_missing_module_means_no_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """If re._parser cannot be imported, no parser is found, and nothing raises."""
    monkeypatch.setitem(sys.modules, "re._parser", None)  # None: import raises ImportError
    assert load_parser() is None


def shapes() -> list[tuple[str, Callable[[Any, Any], tuple[Any, Any]]]]:
    """Ways a later CPython could change the parser: each must switch the prefilter off."""

    def renamed(parser: Any, constants: Any) -> tuple[Any, Any]:
        return SimpleNamespace(parse=parser.parse), constants  # SubPattern gone

    def opcodes(parser: Any, constants: Any) -> tuple[Any, Any]:
        swapped = SimpleNamespace(**vars(constants))
        swapped.LITERAL, swapped.BRANCH = constants.BRANCH, constants.LITERAL
        return parser, swapped

    def flat(parser: Any, constants: Any) -> tuple[Any, Any]:
        def parse(pattern: str, flags: int) -> list[str]:
            del flags
            return list(pattern)  # items no longer (op, arg) pairs

        return SimpleNamespace(parse=parse, SubPattern=parser.SubPattern), constants

    def failing(parser: Any, constants: Any) -> tuple[Any, Any]:
        def parse(pattern: str, flags: int) -> Any:
            raise NotImplementedError(pattern, flags)

        return SimpleNamespace(parse=parse, SubPattern=parser.SubPattern), constants

    return [("renamed", renamed), ("opcodes", opcodes), ("flat", flat), ("failing", failing)]


@pytest.mark.parametrize(("name", "change"), shapes(), ids=[name for name, _ in shapes()])
def test_parser_of_another_shape_means_no_parser(
    name: str, change: Callable[[Any, Any], tuple[Any, Any]]
) -> None:
    """A parser whose names, opcodes, items or behaviour moved is refused, without raising."""
    del name
    assert load_parser(importer(*change(*real_modules()))) is None


def test_a_pattern_of_another_shape_has_no_factors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser that passes the probe but fails on a pattern gives that pattern no factors."""
    parser, constants = real_modules()
    sre = load_parser(importer(parser, constants))
    assert sre is not None

    def parse(pattern: str, flags: int) -> Any:
        if "sandbox" in pattern:
            raise RecursionError(pattern)
        return parser.parse(pattern, flags)

    monkeypatch.setattr(literal_factors, "_SRE", SreParser(**{**vars(sre), "parse": parse}))
    forget()
    try:
        assert required_factors(r"\bsandbox\b") is None
        assert folds_plainly(r"\bsandbox\b") is False
        assert required_factors(r"\bserver down\b") == frozenset({"server down"})
    finally:
        monkeypatch.undo()
        forget()


@pytest.mark.usefixtures("no_parser")
def test_without_parser_every_pattern_is_tried() -> None:
    """No factors and no proofs: may_match lets every pattern through."""
    pattern = RULES.features["outage"][0]
    assert required_factors(pattern.pattern) is None
    assert folds_plainly(pattern.pattern) is False
    assert may_match(pattern, "nothing to see here")


def labelled() -> list[tuple[str, str]]:
    """Subject and body of the benchmark's labelled priority mails."""
    rows = [
        json.loads(line)
        for path in sorted((REPO / "ingest" / "priority" / "data").glob("earlier-*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return [(row["subject"], row["body"]) for row in rows]


def decisions(mails: list[tuple[str, str]]) -> list[PriorityDecision]:
    """The priority decision for each mail with the parser in use."""
    forget()
    return [infer_priority(subject, body, {}, RULES) for subject, body in mails]


def test_same_decisions_with_and_without_the_prefilter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every labelled mail gets the same priority, claim and reason either way."""
    mails = labelled()
    assert mails, "ingest/priority/data/earlier-*.jsonl holds the labelled mails"
    with_prefilter = decisions(mails)
    monkeypatch.setattr(literal_factors, "_SRE", None)
    try:
        without = decisions(mails)
        assert required_factors(RULES.features["outage"][0].pattern) is None  # truly off
    finally:
        monkeypatch.undo()
        forget()
    assert without == with_prefilter
