"""Infer a case's priority from the policy's clauses, and keep the customer's own claim."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from ingest.priority_text import first_line, new_text, sentences, strip_subject_prefixes
from sla.policy import Priority

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["HasHeaders", "PriorityDecision", "PriorityRules", "infer_priority"]

FEATURES = (
    "production",
    "non_production",
    "production_unaffected",
    "data_loss",
    "data_intact",
    "outage",
    "restore_failure",
    "slowness",
    "severe_impact",
    "mitigated",
    "malfunction",
    "no_workaround",
    "workaround",
    "feature_request",
    "enhancement_wish",
    "how_to",
    "resolved",
    "still_broken",
    "hypothetical",
    "admin",
)
CLAIMS = (
    "label_high",
    "label_medium",
    "label_low",
    "statement_high",
    "statement_medium",
    "statement_low",
)
# Features that describe an incident; a hypothetical sentence ("if we ever lost ...")
# does not report one.
_INCIDENT_FEATURES = frozenset(
    {"data_loss", "outage", "restore_failure", "slowness", "severe_impact", "malfunction"}
)
_Patterns = tuple[re.Pattern[str], ...]


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


@dataclass(frozen=True, slots=True)
class PriorityRules:
    """Phrases per feature and language, and the customer-claim markers, compiled."""

    features: Mapping[str, _Patterns]
    claims: Mapping[str, _Patterns]
    languages: tuple[str, ...]
    unspecified_environment_is_production: bool = True
    quote_chars: int = 90

    @classmethod
    def default(cls) -> PriorityRules:
        """The rules shipped in ``ingest/priority_rules.toml``."""
        return _default_rules()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PriorityRules:
        """Build rules from the ``[priority]`` table; missing keys take the defaults.

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
        return cls(
            features=_compile_features(features, languages),
            claims={name: _compile(v, f"claims.{name}") for name, v in _known(claims, CLAIMS)},
            languages=languages,
            unspecified_environment_is_production=_bool(
                merged["unspecified_environment_is_production"],
                "unspecified_environment_is_production",
            ),
            quote_chars=_positive_int(merged["quote_chars"], "quote_chars"),
        )


_TOP_KEYS = frozenset(
    {"languages", "features", "claims", "unspecified_environment_is_production", "quote_chars"}
)


@cache
def _default_data() -> dict[str, Any]:
    text = resources.files("ingest").joinpath("priority_rules.toml").read_text("utf-8")
    table: dict[str, Any] = tomllib.loads(text)["priority"]
    return table


@cache
def _default_rules() -> PriorityRules:
    return PriorityRules.from_mapping({})


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


def _compile_features(table: Mapping[str, Any], languages: tuple[str, ...]) -> dict[str, _Patterns]:
    compiled: dict[str, _Patterns] = {}
    for name, per_language in _known(table, FEATURES):
        by_language = _table(per_language, f"features.{name}")
        patterns: list[re.Pattern[str]] = []
        for language in languages:
            key = f"features.{name}.{language}"
            patterns.extend(_compile(by_language.get(language, []), key))
        compiled[name] = tuple(patterns)
    return compiled


def _compile(value: object, key: str) -> _Patterns:
    if not isinstance(value, list):
        raise ValueError(f"priority.{key}: must be a list of patterns (got {value!r})")  # noqa: TRY004 # config errors are ValueError by contract
    compiled = []
    for index, pattern in enumerate(value):
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(
                f"priority.{key}[{index}]: must be a non-empty string (got {pattern!r})"
            )
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as error:
            raise ValueError(f"priority.{key}[{index}]: {error} (got {pattern!r})") from None
    return tuple(compiled)


# --- inference ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Evidence:
    """The first quoted sentence per feature found in the customer's new text."""

    quotes: Mapping[str, str]

    def __getitem__(self, name: str) -> str | None:
        return self.quotes.get(name)

    def has(self, *names: str) -> bool:
        return any(name in self.quotes for name in names)


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
    text = new_text(body)
    clean_subject = strip_subject_prefixes(subject)
    evidence = _evidence([clean_subject, *sentences(text)], rules)
    priority, why = _decide(evidence, rules)
    claim = _claim(clean_subject, text, headers, rules)
    return PriorityDecision(
        priority, claim[0] if claim else None, _with_claim(why, priority, claim)
    )


def _evidence(parts: list[str], rules: PriorityRules) -> _Evidence:
    hypothetical = rules.features["hypothetical"]
    quotes: dict[str, str] = {}
    for sentence in parts:
        is_hypothetical = any(p.search(sentence) for p in hypothetical)
        for name, patterns in rules.features.items():
            if name in quotes or (is_hypothetical and name in _INCIDENT_FEATURES):
                continue
            match = next((m for p in patterns if (m := p.search(sentence))), None)
            if match is not None:
                quotes[name] = _quote(sentence, match, rules.quote_chars)
    return _Evidence(quotes)


def _quote(sentence: str, match: re.Match[str], width: int) -> str:
    """The part of ``sentence`` around ``match``, at most ``width`` characters."""
    if len(sentence) <= width:
        return sentence
    start = max(0, min(match.start() - width // 3, len(sentence) - width))
    return ("…" if start else "") + sentence[start : start + width].strip() + "…"


def _environment(evidence: _Evidence, rules: PriorityRules) -> str:
    """'production', 'non-production' or 'unspecified'; 'production is fine' wins."""
    if evidence.has("production_unaffected"):
        return "non-production"
    if evidence.has("production"):
        return "production"
    if evidence.has("non_production"):
        return "non-production"
    return "production" if rules.unspecified_environment_is_production else "unspecified"


def _decide(ev: _Evidence, rules: PriorityRules) -> tuple[Priority, str]:
    """Apply the policy's clauses in order of precedence."""
    if ev.has("resolved") and not ev.has("still_broken"):
        return Priority.LOW, f"closing note or past incident: '{ev['resolved']}'"
    environment = _environment(ev, rules)
    is_production = environment == "production"
    if ev.has("outage"):
        if is_production:
            return Priority.HIGH, f"complete service failure: '{ev['outage']}'"
        return Priority.MEDIUM, f"failure limited to non-production: '{ev['outage']}'"
    if ev.has("data_loss") and not ev.has("data_intact"):
        return _data_loss(ev, environment)
    if ev.has("restore_failure") and is_production and not _has_workaround(ev):
        return Priority.HIGH, f"restore failing in production: '{ev['restore_failure']}'"
    return _degradation_or_less(ev, is_production=is_production)


def _has_workaround(ev: _Evidence) -> bool:
    return ev.has("workaround") and not ev.has("no_workaround")


def _data_loss(ev: _Evidence, environment: str) -> tuple[Priority, str]:
    """High only in production, with no workaround and a service that cannot undo it."""
    loss = ev["data_loss"]
    if environment != "production":
        return Priority.MEDIUM, f"data loss outside production: '{loss}'"
    if _has_workaround(ev):
        return Priority.MEDIUM, f"data loss with a workaround: '{loss}', '{ev['workaround']}'"
    is_service_failing = ev.has("malfunction", "no_workaround", "restore_failure", "slowness")
    if not is_service_failing and ev.has("how_to"):
        return Priority.LOW, f"how-to: data loss the restore can undo: '{loss}'"
    if ev.has("no_workaround"):
        return (
            Priority.HIGH,
            f"production data loss: '{loss}', no workaround: '{ev['no_workaround']}'",
        )
    return Priority.HIGH, f"production data loss: '{loss}', no workaround stated"


def _degradation_or_less(ev: _Evidence, *, is_production: bool) -> tuple[Priority, str]:
    """Severe degradation, a bug, or nothing broken at all."""
    symptom = ev["slowness"] or ev["malfunction"]
    is_contained = ev.has("mitigated") or _has_workaround(ev)
    if symptom and ev.has("severe_impact") and is_production and not is_contained:
        return Priority.HIGH, f"severe degradation: '{symptom}', impact: '{ev['severe_impact']}'"
    if ev.has("feature_request"):
        return Priority.LOW, f"feature request: '{ev['feature_request']}'"
    if symptom:
        return Priority.MEDIUM, _medium_reason(ev, symptom, is_production=is_production)
    for name, label in _LOW_REASONS:
        if ev.has(name):
            return Priority.LOW, f"{label}: '{ev[name]}'"
    return Priority.LOW, "nothing reported broken"


_LOW_REASONS = (
    ("enhancement_wish", "feature request"),
    ("admin", "billing/account/compliance request"),
    ("how_to", "how-to"),
)


def _medium_reason(ev: _Evidence, symptom: str, *, is_production: bool) -> str:
    limits = []
    if not is_production:
        limits.append("non-production")
    if _has_workaround(ev):
        limits.append(f"workaround: '{ev['workaround']}'")
    if ev.has("mitigated"):
        limits.append(f"limited impact: '{ev['mitigated']}'")
    suffix = f" ({'; '.join(limits)})" if limits else ""
    return f"service misbehaving: '{symptom}'{suffix}"


# --- the customer's claim -------------------------------------------------------------

_X_PRIORITY = {"1": Priority.HIGH, "2": Priority.HIGH, "4": Priority.LOW, "5": Priority.LOW}
_IMPORTANCE = {"high": Priority.HIGH, "low": Priority.LOW}


def _claim(
    subject: str, text: str, headers: Mapping[str, str] | HasHeaders, rules: PriorityRules
) -> tuple[Priority, str] | None:
    """The priority the customer states and where: a label, a statement, or a header."""
    for place, where in ((subject, "subject"), (first_line(text), "first line")):
        found = _match_claim(place, rules, "label_") or _match_claim(place, rules, "statement_")
        if found:
            return found[0], f"{where} '{found[1]}'"
    found = _match_claim(text, rules, "statement_")
    if found:
        return found[0], f"text '{found[1]}'"
    return _header_claim(headers)


def _match_claim(text: str, rules: PriorityRules, prefix: str) -> tuple[Priority, str] | None:
    best: tuple[int, Priority, str] | None = None
    for priority in Priority:
        for pattern in rules.claims[f"{prefix}{priority.value}"]:
            match = pattern.search(text)
            if match and (best is None or match.start() < best[0]):
                best = (match.start(), priority, match.group(0).strip())
    return None if best is None else (best[1], best[2])


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


def _with_claim(why: str, priority: Priority, claim: tuple[Priority, str] | None) -> str:
    if claim is None:
        return why
    claimed, where = claim
    if claimed == priority:
        return f"{why}; customer claimed {claimed.value} ({where}), agreed"
    return f"{why}; customer claimed {claimed.value} ({where}), recategorised as {priority.value}"
