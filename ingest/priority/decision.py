"""The model decides the priority; the rules keep a floor under it; the claim is kept apart.

A High read as Low is the costliest error (the case runs on the slowest clock), so
where the rules find a serious problem (High) and the model says Low, the result is
raised to the floor. Cross-validation on the labelled data chose the floor's level
(``bench/priority_model.py``). Everything else is the model's call, with its
confidence and the words that decided it as the reason.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from ingest.priority.features import detect
from ingest.priority.inference import (
    HasHeaders,
    PriorityDecision,
    PriorityRules,
    customer_claim,
    rules_decision,
    with_claim,
)
from ingest.priority.model import reduced
from ingest.priority.text import sentences
from sla.policy import Priority

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ingest.priority.model import ModelPrediction, PriorityModel

__all__ = ["DEFAULT_FLOOR", "Floor", "decide_priority", "model_reason"]

# Below this confidence the reason names the runner-up too: the call was close.
CLOSE_CALL = 0.6


class Floor(StrEnum):
    """What a rules' High does to a model's Low."""

    NONE = "none"  # nothing: the model alone decides
    MEDIUM = "medium"  # at least Medium
    HIGH = "high"  # High, as the rules say


# Off by default, on the evidence in bench/README.md: over 1,625 repository emails
# (grouped cross-validation) the floor removed 2 of 12 High->Low for 1.3 points; on
# round 2's 450 blind emails it removed none (the model alone read no High as Low)
# and cost 2.7 to 6 points, lifting real Lows that merely mention production or loss.
DEFAULT_FLOOR = Floor.NONE


def decide_priority(
    subject: str,
    body: str,
    headers: Mapping[str, str] | HasHeaders,
    rules: PriorityRules,
    *,
    model: PriorityModel,
    floor: Floor = DEFAULT_FLOOR,
) -> PriorityDecision:
    """The model's priority for an email, raised by the rules' floor, with the claim kept.

    The model reads the subject and the new text only (quoted history and the signature
    do not vote). The rules run only when the floor can change the result.
    """
    clean_subject, text = reduced(subject, body)
    prediction = model.predict_text(f"{clean_subject}\n{text}")
    priority, why = prediction.priority, model_reason(prediction)
    if floor is not Floor.NONE and priority is Priority.LOW:
        evidence = detect([clean_subject, *sentences(text)], rules.features, rules.quote_chars)
        rules_priority, rules_why = rules_decision(evidence, rules)
        if rules_priority is Priority.HIGH:
            priority = Priority(floor.value)
            why = f"{why}; raised to {priority.value.title()} by the rules' floor: {rules_why}"
    claim = customer_claim(clean_subject, text, headers, rules)
    reason = with_claim(why, priority, claim)
    return PriorityDecision(priority, claim[0] if claim else None, reason, prediction.confidence)


def model_reason(prediction: ModelPrediction) -> str:
    """``model: High (0.81): "production", "all users"``, and the runner-up if it was close."""
    terms = ", ".join(f'"{term}"' for term in prediction.terms)
    reason = f"model: {prediction.priority.value.title()} ({prediction.confidence:.2f})"
    if terms:
        reason += f": {terms}"
    if prediction.confidence < CLOSE_CALL:
        runner_up = prediction.runner_up.value.title()
        reason += f"; runner-up {runner_up} ({prediction.runner_up_confidence:.2f})"
    return reason
