"""The model decides the priority; the rules keep a floor under it; the claim is kept apart.

A High read as Low is the costliest error (the case runs on the slowest clock), so a
model Low that gives High a fair chance is read as Medium, and where the rules find a
serious problem (High) and the model says Low, the result may be raised to a floor.
Cross-validation on the labelled data chose both (``bench/priority_model.py``).
Everything else is the model's call, with its confidence and the words that decided it
as the reason.
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

__all__ = [
    "DEFAULT_FLOOR",
    "HIGH_SHARE_FOR_MEDIUM",
    "Floor",
    "decide_priority",
    "model_reason",
]

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
# Below this many words (subject and new text) the model has little to read: "Complete
# outage in production" is a handful of terms it weighs mostly by their use in longer
# mail. There a rules' High decides. Over 1,625 emails (grouped CV) this cost 0.4 points
# and saved one High->Low; on the 750 blind emails it changed one answer (bench/README.md).
SHORT_MAIL_WORDS = 30
# A High read as Low puts a real emergency on the slowest clock, so a model Low with this
# much of its probability on High is read as Medium: the worst error becomes a lesser one.
# Chosen by grouped cross-validation over 3,875 emails (bench/README.md): High->Low
# 12 -> 3 for 2.3 points of accuracy (0.932 -> 0.909), paid by Lows that merely sound
# serious going a step up. 0.25 left 7, 0.15 still 3 at 4 points.
HIGH_SHARE_FOR_MEDIUM = 0.2


def decide_priority(
    subject: str,
    body: str,
    headers: Mapping[str, str] | HasHeaders,
    rules: PriorityRules,
    *,
    model: PriorityModel,
    floor: Floor = DEFAULT_FLOOR,
    high_share_for_medium: float = HIGH_SHARE_FOR_MEDIUM,
) -> PriorityDecision:
    """The model's priority for an email, raised by the rules where they know better.

    The model reads the subject and the new text only (quoted history and the signature
    do not vote). The rules run only where they can change the result: a short mail the
    model has too few words to judge, or a model Low under a floor.
    """
    clean_subject, text = reduced(subject, body)
    prediction = model.predict_text(f"{clean_subject}\n{text}")
    priority, why = prediction.priority, model_reason(prediction)
    high = prediction.share(Priority.HIGH)
    if priority is Priority.LOW and high >= high_share_for_medium:
        priority = Priority.MEDIUM
        why = f"{why}; read as Medium: High at {high:.2f} is too likely for Low"
    short = len(clean_subject.split()) + len(text.split()) < SHORT_MAIL_WORDS
    # The floor is for the model's own Low, whether or not the guard moved it already.
    lift = Priority.HIGH if short else _floor_target(floor, prediction.priority)
    if lift is not None and lift.rank < priority.rank:
        evidence = detect([clean_subject, *sentences(text)], rules.features, rules.quote_chars)
        rules_priority, rules_why = rules_decision(evidence, rules)
        if rules_priority is Priority.HIGH:
            priority = lift
            by = "the rules on a short mail" if short else "the rules' floor"
            why = f"{why}; raised to {priority.value.title()} by {by}: {rules_why}"
    claim = customer_claim(clean_subject, text, headers, rules)
    reason = with_claim(why, priority, claim)
    confidence = prediction.share(priority)
    return PriorityDecision(priority, claim[0] if claim else None, reason, confidence)


def _floor_target(floor: Floor, priority: Priority) -> Priority | None:
    """What the floor makes of a rules' High: only a model Low is raised, if at all."""
    if floor is Floor.NONE or priority is not Priority.LOW:
        return None
    return Priority(floor.value)


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
