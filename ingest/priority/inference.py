"""Infer a case's priority from the policy's clauses, and keep the customer's own claim."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache, cached_property
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from ingest.priority.features import (
    FEATURES,
    Evidence,
    Hit,
    LazyPattern,
    PatternLike,
    Patterns,
    detect,
    environment_near,
)
from ingest.priority.literal_factors import folds_plainly, is_plain, may_match
from ingest.priority.text import first_line, new_text, sentences
from ingest.triage.subject import bare_subject
from sla.policy import Priority

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "HasHeaders",
    "PriorityDecision",
    "PriorityRules",
    "customer_claim",
    "infer_priority",
    "rules_decision",
    "with_claim",
]

CLAIMS = (
    "label_high",
    "label_medium",
    "label_low",
    "statement_high",
    "statement_medium",
    "statement_low",
)


class HasHeaders(Protocol):
    """Anything with a case-insensitive header lookup, such as ``ParsedMail``."""

    def header(self, name: str, /) -> str | None:
        """The first value of header ``name``, or None."""


@dataclass(frozen=True, slots=True)
class PriorityDecision:
    """The effective priority, the customer's claim if any, and why."""

    priority: Priority
    customer_priority: Priority | None
    reason: str
    confidence: float | None = None  # the model's probability for its class; None: rules alone


@dataclass(frozen=True)
class PriorityRules:
    """Patterns per feature and language, and the customer-claim markers.

    Compiled when first used, not when built: the shipped rules are some 1,700 patterns
    (a fifth of a second to compile), and a process that hands the analysis to a worker
    (the daemon, an import) builds the rules only to send them there. A mapping given to
    ``from_mapping`` is still compiled at once, so that a bad pattern is refused there.
    """

    feature_sources: Mapping[str, tuple[str, ...]]
    claim_sources: Mapping[str, tuple[str, ...]]
    languages: tuple[str, ...]
    unspecified_environment_is_production: bool = True
    quote_chars: int = 90

    @cached_property
    def features(self) -> Mapping[str, Patterns]:
        """The feature patterns, compiled, in ``FEATURES`` order."""
        return {name: _compiled(v) for name, v in self.feature_sources.items()}

    @cached_property
    def claims(self) -> Mapping[str, Patterns]:
        """The claim markers, compiled, in ``CLAIMS`` order."""
        return {name: _compiled(v) for name, v in self.claim_sources.items()}

    def __getstate__(self) -> dict[str, Any]:
        # The sources only: a compiled pattern pickles as its source anyway, and is
        # compiled again where it is unpickled (the worker compiles when it first uses).
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    @classmethod
    def default(cls) -> PriorityRules:
        """The rules shipped in ``ingest/priority/rules.toml``."""
        return _default_rules()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, check_patterns: bool = True) -> PriorityRules:
        """Build rules from the ``[priority]`` table; missing keys take the defaults.

        ``check_patterns``: compile every pattern now, so that a bad one is refused here
        (the shipped rules skip it: a test compiles them).

        Raises:
            ValueError: ``priority.<key>: <problem> (got X)`` for the first bad value.
        """
        merged = {**_default_data(), **data}
        unknown = sorted(set(merged) - _TOP_KEYS)
        if unknown:
            raise ValueError(f"priority.{unknown[0]}: unknown key (got {unknown[0]!r})")
        languages = _languages(merged["languages"])
        features = {**_default_data()["features"], **_table(merged["features"], "features")}
        claims = {**_default_data()["claims"], **_table(merged["claims"], "claims")}
        rules = cls(
            feature_sources=_feature_sources(features, languages),
            claim_sources={
                name: _sources(v, f"claims.{name}") for name, v in _known(claims, CLAIMS)
            },
            languages=languages,
            unspecified_environment_is_production=_bool(
                merged["unspecified_environment_is_production"],
                "unspecified_environment_is_production",
            ),
            quote_chars=_positive_int(merged["quote_chars"], "quote_chars"),
        )
        if check_patterns:
            _check(features, languages, claims)
        return rules


_TOP_KEYS = frozenset(
    {"languages", "features", "claims", "unspecified_environment_is_production", "quote_chars"}
)


@cache
def _default_data() -> dict[str, Any]:
    text = resources.files("ingest.priority").joinpath("rules.toml").read_text("utf-8")
    table: dict[str, Any] = tomllib.loads(text)["priority"]
    return table


@cache
def _default_rules() -> PriorityRules:
    return PriorityRules.from_mapping({}, check_patterns=False)


# --- validation -----------------------------------------------------------------------


def _table(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"priority.{key}: must be a table (got {value!r})")  # noqa: TRY004 # config errors are ValueError by contract
    return dict(value)


def _known(table: Mapping[str, Any], names: Sequence[str]) -> list[tuple[str, Any]]:
    for name in table:
        if name not in names:
            kind = "claims" if names is CLAIMS else "features"
            raise ValueError(f"priority.{kind}.{name}: unknown {kind[:-1]} (got {name!r})")
    return [(name, table[name]) for name in names]


def _languages(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"priority.languages: must be a non-empty list of codes (got {value!r})")
    return tuple(value)


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"priority.{key}: must be true or false (got {value!r})")  # noqa: TRY004 # config errors are ValueError by contract
    return value


def _positive_int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"priority.{key}: must be a positive integer (got {value!r})")
    return value


def _feature_sources(
    table: Mapping[str, Any], languages: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    sources: dict[str, tuple[str, ...]] = {}
    for name, per_language in _known(table, FEATURES):
        by_language = _table(per_language, f"features.{name}")
        patterns: list[str] = []
        for language in languages:
            patterns.extend(_sources(by_language.get(language, []), f"features.{name}.{language}"))
        sources[name] = tuple(patterns)
    return sources


def _sources(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"priority.{key}: must be a list of patterns (got {value!r})")  # noqa: TRY004 # config errors are ValueError by contract
    for index, pattern in enumerate(value):
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(
                f"priority.{key}[{index}]: must be a non-empty string (got {pattern!r})"
            )
    return tuple(value)


def _check(
    features: Mapping[str, Any], languages: tuple[str, ...], claims: Mapping[str, Any]
) -> None:
    """Compile every pattern once; the first that ``re`` refuses is named by its key."""
    keyed = [
        (f"features.{name}.{language}", per_language.get(language, []))
        for name, per_language in features.items()
        for language in languages
    ]
    keyed += [(f"claims.{name}", patterns) for name, patterns in claims.items()]
    for key, patterns in keyed:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as error:
                raise ValueError(f"priority.{key}[{index}]: {error} (got {pattern!r})") from None


def _compiled(sources: tuple[str, ...]) -> Patterns:
    return tuple(LazyPattern(pattern) for pattern in sources)


# --- inference ------------------------------------------------------------------------


MAX_BODY_CHARS = 60_000
MAX_TEXT_CHARS = 12_000


def infer_priority(
    subject: str,
    body: str,
    headers: Mapping[str, str] | HasHeaders,
    rules: PriorityRules,
) -> PriorityDecision:
    """The priority the policy assigns to an email, with the customer's claim kept apart.

    Only the new text counts: quoted history and the signature are removed first.
    Tone, capitals and the claim never change the label; the claim is reported.
    """
    # The problem is stated at the top; a megabyte of pasted logs adds nothing but time
    # (matching costs about 57 us per character), so only the head is read.
    text = new_text(body[:MAX_BODY_CHARS])[:MAX_TEXT_CHARS]
    clean_subject = bare_subject(subject[:1000])
    evidence = detect([clean_subject, *sentences(text)], rules.features, rules.quote_chars)
    priority, why = rules_decision(evidence, rules)
    claim = customer_claim(clean_subject, text, headers, rules)
    return PriorityDecision(priority, claim[0] if claim else None, with_claim(why, priority, claim))


def rules_decision(ev: Evidence, rules: PriorityRules) -> tuple[Priority, str]:
    """Closing notes first, then the worst serious problem, then bugs, then requests."""
    if ev.has("resolved") and not ev.has("still_broken"):
        return Priority.LOW, f"closing note or past incident: '{ev.quote('resolved')}'"
    verdicts = [_weigh(ev, kind, hit, rules) for kind, hit in _serious_problems(ev)]
    if verdicts:
        # The costliest reading wins: a High anywhere outweighs a Medium elsewhere.
        return min(verdicts, key=lambda v: _RANK[v[0]])
    return _lesser(ev)


_RANK = {Priority.HIGH: 0, Priority.MEDIUM: 1, Priority.LOW: 2}


def _serious_problems(ev: Evidence) -> list[tuple[str, Hit]]:
    """Each serious symptom class found, with the sentence that shows it."""
    found: list[tuple[str, Hit | None]] = [
        ("security exposure", ev.first("security_exposure")),
        ("complete service failure", ev.first("outage")),
        ("production data loss", _data_damage(ev)),
        ("complete service failure", _broad_failure(ev)),
        ("severe degradation", _severe_degradation(ev)),
    ]
    return [(kind, hit) for kind, hit in found if hit is not None]


def _data_damage(ev: Evidence) -> Hit | None:
    """Damage to stored data; wrong figures in a report or preview are a display bug."""
    if ev.has("data_intact"):
        return None
    hits = ev.all("data_integrity")
    return next((hit for hit in hits if not ev.at("display_only", hit.index)), None)


def _is_broad(ev: Evidence, index: int) -> bool:
    return ev.at("broad_scope", index) and not ev.at("narrow_scope", index)


def _broad_failure(ev: Evidence) -> Hit | None:
    """A failure of everything or everyone counts as a complete service failure."""
    failures = (*ev.all("malfunction"), *ev.all("restore_failure"))
    return next((hit for hit in failures if _is_broad(ev, hit.index)), None)


def _severe_degradation(ev: Evidence) -> Hit | None:
    """Slowness that is quantified as severe, or that hits everyone."""
    for hit in ev.all("degradation"):
        if ev.at("severe_impact", hit.index) or _is_broad(ev, hit.index):
            return hit
    slow = ev.first("degradation")
    return slow if slow and ev.has("severe_impact") else None


def _weigh(ev: Evidence, kind: str, hit: Hit, rules: PriorityRules) -> tuple[Priority, str]:
    """High only in production, with no workaround and no statement of limited reach."""
    problem = f"'{hit.quote}'"
    if _is_restorable_by_customer(ev, kind):
        return Priority.LOW, f"how-to: data loss the restore can undo: {problem}"
    near = environment_near(ev, hit.index)
    if near is None and not rules.unspecified_environment_is_production:
        return Priority.MEDIUM, f"{kind} in an unspecified environment: {problem}"
    if near is not None and near[0] == "non-production":
        return Priority.MEDIUM, f"{kind} outside production: {problem} ('{near[1].quote}')"
    limit = _limit(ev, hit)
    if limit:
        return Priority.MEDIUM, f"{kind} with {limit}: {problem}"
    return Priority.HIGH, f"{kind}: {problem}, {_no_workaround_note(ev)}"


def _is_restorable_by_customer(ev: Evidence, kind: str) -> bool:
    """The customer's own deletion, asked about as a how-to, with restore not failing."""
    if kind != "production data loss" or ev.has("restore_failure", "no_workaround", "outage"):
        return False
    return ev.has("customer_side") and ev.has("how_to")


def _has_workaround(ev: Evidence) -> bool:
    return ev.has("workaround") and not ev.has("no_workaround")


def _limit(ev: Evidence, hit: Hit) -> str:
    """Why the impact is limited ('' when it is not): workaround, reach or the customer."""
    if _has_workaround(ev):
        return f"a workaround: '{ev.quote('workaround')}'"
    if ev.has("limited_impact") and not ev.has("severe_impact"):
        return f"limited impact: '{ev.quote('limited_impact')}'"
    narrow = _narrow_reach(ev, hit)
    return f"limited reach: '{narrow.quote}'" if narrow else ""


def _narrow_reach(ev: Evidence, hit: Hit) -> Hit | None:
    """A statement that only some are affected, unless the problem sentence says all.

    'Everyone' elsewhere in the email outweighs 'one user' in another sentence.
    """
    narrow = ev.first("narrow_scope")
    if narrow is None or _is_broad(ev, hit.index):
        return None
    return narrow if narrow.index == hit.index or not ev.has("broad_scope") else None


def _no_workaround_note(ev: Evidence) -> str:
    stated = ev.first("no_workaround") or ev.first("restore_failure")
    return f"no workaround: '{stated.quote}'" if stated else "no workaround stated"


_SYMPTOMS = ("malfunction", "degradation", "restore_failure", "data_integrity", "outage")
_REQUESTS = (
    ("feature_request", "feature request"),
    ("enhancement_wish", "feature request"),
    ("admin", "billing/account/compliance request"),
    ("how_to", "how-to"),
)


def _lesser(ev: Evidence) -> tuple[Priority, str]:
    """A bug with limited impact is Medium; a request is Low; unclear leans Medium."""
    symptom = next((hit for name in _SYMPTOMS if (hit := ev.first(name))), None)
    if ev.has("feature_request") and not ev.has("outage"):
        return Priority.LOW, f"feature request: '{ev.quote('feature_request')}'"
    if symptom and not _only_about_billing(ev):
        return Priority.MEDIUM, _medium_reason(ev, symptom)
    for name, label in _REQUESTS:
        if ev.has(name):
            return Priority.LOW, f"{label}: '{ev.quote(name)}'"
    if ev.has("limited_impact"):
        return Priority.MEDIUM, f"minor problem: '{ev.quote('limited_impact')}'"
    # Low must be earned by a recognised request: an unrecognised problem costs a day.
    return Priority.MEDIUM, "no request or question recognised: treated as a possible problem"


def _only_about_billing(ev: Evidence) -> bool:
    """Every symptom sits in a sentence about an invoice or a contract: an admin request."""
    hits = [hit for name in _SYMPTOMS for hit in ev.all(name)]
    return bool(hits) and all(ev.at("admin", hit.index) for hit in hits)


def _medium_reason(ev: Evidence, symptom: Hit) -> str:
    limits = []
    if ev.has("workaround"):
        limits.append(f"workaround: '{ev.quote('workaround')}'")
    if ev.has("limited_impact"):
        limits.append(f"limited impact: '{ev.quote('limited_impact')}'")
    near = environment_near(ev, symptom.index)
    if near is not None and near[0] == "non-production":
        limits.append("non-production")
    suffix = f" ({'; '.join(limits)})" if limits else ""
    return f"service misbehaving: '{symptom.quote}'{suffix}"


# --- the customer's claim -------------------------------------------------------------

_X_PRIORITY = {"1": Priority.HIGH, "2": Priority.HIGH, "4": Priority.LOW, "5": Priority.LOW}
_IMPORTANCE = {"high": Priority.HIGH, "low": Priority.LOW}


def customer_claim(
    subject: str, text: str, headers: Mapping[str, str] | HasHeaders, rules: PriorityRules
) -> tuple[Priority, str] | None:
    """The priority the customer states and where: a label, a statement, or a header."""
    for place, where in ((subject, "subject"), (first_line(text), "first line")):
        low = place.lower() if is_plain(place) else None
        found = _match_claim(place, rules, "label_", low) or _match_claim(
            place, rules, "statement_", low
        )
        if found:
            return found[0], f"{where} '{found[1]}'"
    # Each statement pattern scans the whole text; most mails hold none of their words.
    lowered = text.lower() if is_plain(text) else None
    found = _match_claim(text, rules, "statement_", lowered)
    if found:
        return found[0], f"text '{found[1]}'"
    return _header_claim(headers)


def _match_claim(
    text: str, rules: PriorityRules, prefix: str, lowered: str | None = None
) -> tuple[Priority, str] | None:
    """The earliest claim in ``text``; ``lowered``: the text lower-cased, if it is plain."""
    best: tuple[int, Priority, str] | None = None
    for priority in Priority:
        for pattern in rules.claims[f"{prefix}{priority.value}"]:
            if lowered is not None and _cannot_match(pattern, lowered):
                continue
            match = pattern.search(text)
            if match and (best is None or match.start() < best[0]):
                best = (match.start(), priority, match.group(0).strip())
    return None if best is None else (best[1], best[2])


def _cannot_match(pattern: PatternLike, lowered: str) -> bool:
    """Proof that ``pattern`` finds nothing in the plain text whose lower case is ``lowered``."""
    return folds_plainly(pattern.pattern) and not may_match(pattern, lowered)


def _header_claim(headers: Mapping[str, str] | HasHeaders) -> tuple[Priority, str] | None:
    x_priority = (_header(headers, "X-Priority") or "").strip()[:1]
    if x_priority in _X_PRIORITY:
        return _X_PRIORITY[x_priority], f"X-Priority {x_priority}"
    importance = (_header(headers, "Importance") or "").strip().lower()
    if importance in _IMPORTANCE:
        return _IMPORTANCE[importance], f"Importance: {importance}"
    return None


def _header(headers: Mapping[str, str] | HasHeaders, name: str) -> str | None:
    if isinstance(headers, Mapping):
        wanted = name.lower()
        return next((v for k, v in headers.items() if k.lower() == wanted), None)
    return headers.header(name)


def with_claim(why: str, priority: Priority, claim: tuple[Priority, str] | None) -> str:
    """``why``, and what the customer claimed: agreed with, or recategorised."""
    if claim is None:
        return why
    claimed, where = claim
    if claimed == priority:
        return f"{why}; customer claimed {claimed.value} ({where}), agreed"
    return f"{why}; customer claimed {claimed.value} ({where}), recategorised as {priority.value}"
