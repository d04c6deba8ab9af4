"""The model decides, the rules' floor stops a High read as Low, and the claim is kept."""

from __future__ import annotations

import pytest

from ingest.priority.decision import HIGH_SHARE_FOR_MEDIUM, Floor, decide_priority, model_reason
from ingest.priority.inference import PriorityRules, infer_priority
from ingest.priority.model import ModelPrediction, PriorityModel
from sla.policy import Priority
from tests.support.priority_model import document

RULES = PriorityRules.default()
MODEL = PriorityModel.from_document(document())
# The rules read this as High (a complete failure in production); the tiny model's
# "how" makes it Low.
SERIOUS_HOW = (
    "How bad",
    (
        "How? Since 09:00 every request to the API returns HTTP 503 in production. Nobody can"
        " work. We are a firm of accountants with three offices and use it every day for our"
        " clients' books."
    ),
)
# The same complaint, short: too few words for the model, so the rules' High decides.
SHORT_HOW = ("How bad", "How? Every request to the API returns HTTP 503 in production.")


def test_serious_how_is_high_for_the_rules_and_low_for_the_model() -> None:
    """The fixture does what the floor tests need: rules High, model Low."""
    assert infer_priority(*SERIOUS_HOW, {}, RULES).priority is Priority.HIGH
    assert MODEL.predict(*SERIOUS_HOW).priority is Priority.LOW


@pytest.mark.parametrize(
    ("floor", "expected"),
    [(Floor.NONE, Priority.LOW), (Floor.MEDIUM, Priority.MEDIUM), (Floor.HIGH, Priority.HIGH)],
)
def test_floor_raises_a_model_low_that_the_rules_call_high(
    floor: Floor, expected: Priority
) -> None:
    """With a floor, a rules' High lifts the model's Low to the floor; without, it stays Low."""
    decision = decide_priority(*SERIOUS_HOW, {}, RULES, model=MODEL, floor=floor)
    assert decision.priority is expected
    assert decision.reason.startswith("model: Low (")
    if floor is Floor.NONE:
        assert "floor" not in decision.reason
    else:
        assert f"raised to {expected.value.title()} by the rules' floor: " in decision.reason
        assert "complete service failure" in decision.reason


def test_floor_leaves_a_model_low_that_the_rules_do_not_call_high() -> None:
    """A how-to the rules also read as minor stays Low."""
    decision = decide_priority("Question", "How do I export a report?", {}, RULES, model=MODEL)
    assert decision.priority is Priority.LOW
    assert "floor" not in decision.reason


def test_floor_never_lowers_the_model() -> None:
    """A model's High stays High whatever the rules say."""
    decision = decide_priority(
        "Outage for all users", "Outage: how do we set up a dashboard?", {}, RULES, model=MODEL
    )
    assert decision.priority is Priority.HIGH


def test_reason_names_the_model_its_confidence_and_terms() -> None:
    """The reason reads 'model: High (0.xx): "outage", "all users"' and the confidence is kept."""
    decision = decide_priority(
        "Outage", "The outage hits all users since noon.", {}, RULES, model=MODEL
    )
    assert decision.priority is Priority.HIGH
    assert decision.reason.startswith(f"model: High ({decision.confidence:.2f}): ")
    assert '"outage", "all users"' in decision.reason
    assert decision.confidence is not None
    assert 0 < decision.confidence <= 1


def test_close_call_names_the_runner_up() -> None:
    """Below the close-call confidence the runner-up and its share are in the reason."""
    close = ModelPrediction(Priority.MEDIUM, 0.48, Priority.HIGH, 0.41, 0.1, ("slow",))
    assert model_reason(close) == 'model: Medium (0.48): "slow"; runner-up High (0.41)'
    sure = ModelPrediction(Priority.LOW, 0.9, Priority.MEDIUM, 0.06, 2.0, ())
    assert model_reason(sure) == "model: Low (0.90)"


@pytest.mark.parametrize(
    ("subject", "headers", "claimed", "where"),
    [
        ("[P1] How do I export?", {}, Priority.HIGH, "subject"),
        ("How do I export?", {"X-Priority": "1 (Highest)"}, Priority.HIGH, "X-Priority 1"),
        ("Outage for all users", {"Importance": "low"}, Priority.LOW, "Importance: low"),
    ],
)
def test_customer_claim_is_kept_and_reported(
    subject: str, headers: dict[str, str], claimed: Priority, where: str
) -> None:
    """The claim is found as the rules find it and reported; it never sets the priority."""
    decision = decide_priority(subject, "Thanks in advance.", headers, RULES, model=MODEL)
    rules = infer_priority(subject, "Thanks in advance.", headers, RULES)
    assert decision.customer_priority is claimed
    assert decision.customer_priority is rules.customer_priority
    assert f"customer claimed {claimed.value} ({where}" in decision.reason
    assert decision.priority is MODEL.predict(subject, "Thanks in advance.").priority


def test_no_claim_no_customer_priority() -> None:
    """Without a stated priority the claim is None and the reason does not mention one."""
    decision = decide_priority("Question", "How do I export?", {}, RULES, model=MODEL)
    assert decision.customer_priority is None
    assert "customer claimed" not in decision.reason


def test_a_short_mail_that_the_rules_call_high_is_high_without_a_floor() -> None:
    """Under 30 words the model has little to read; a rules' High decides, and says so."""
    assert MODEL.predict(*SHORT_HOW).priority is Priority.LOW
    decision = decide_priority(*SHORT_HOW, {}, RULES, model=MODEL, floor=Floor.NONE)
    assert decision.priority is Priority.HIGH
    assert "raised to High by the rules on a short mail: " in decision.reason


def test_a_long_mail_is_the_models_without_a_floor() -> None:
    """From 30 words on, and with no floor, the rules' High does not move the model's Low."""
    decision = decide_priority(*SERIOUS_HOW, {}, RULES, model=MODEL, floor=Floor.NONE)
    assert decision.priority is Priority.LOW


# With Low's intercept raised, "how" and "outage" together leave Low ahead and High at
# about a third: a Low the model is unsure of, with High close behind.
UNSURE_MODEL = PriorityModel.from_document(document(intercepts=[0.0, 0.5, 0.5]))
# Long enough (30 words and more) that the model's call stands without the rules.
UNSURE = (
    "Outage",
    (
        "How? We saw a message on our reporting page this morning and wondered what it meant"
        " for our team, who use the reports every week to plan their work for the coming days."
    ),
)


def test_a_low_with_high_close_behind_is_read_as_medium() -> None:
    """A model Low that gives High at least HIGH_SHARE_FOR_MEDIUM becomes Medium, and says so."""
    prediction = UNSURE_MODEL.predict(*UNSURE)
    assert prediction.priority is Priority.LOW
    assert prediction.share(Priority.HIGH) >= HIGH_SHARE_FOR_MEDIUM
    decision = decide_priority(*UNSURE, {}, RULES, model=UNSURE_MODEL)
    assert decision.priority is Priority.MEDIUM
    assert decision.reason.startswith("model: Low (")
    high = prediction.share(Priority.HIGH)
    assert f"read as Medium: High at {high:.2f} is too likely for Low" in decision.reason
    assert decision.confidence == pytest.approx(prediction.share(Priority.MEDIUM))


def test_a_sure_low_stays_low() -> None:
    """A Low with High far behind is not touched by the guard."""
    prediction = UNSURE_MODEL.predict("Question", "How do I export a report?")
    assert prediction.share(Priority.HIGH) < HIGH_SHARE_FOR_MEDIUM
    decision = decide_priority(
        "Question", "How do I export a report?", {}, RULES, model=UNSURE_MODEL
    )
    assert decision.priority is Priority.LOW
    assert "read as Medium" not in decision.reason
    assert decision.confidence == pytest.approx(prediction.confidence)


def test_shares_cover_every_class_and_sum_to_one() -> None:
    """The prediction carries every class's share; the winner's is its confidence."""
    prediction = MODEL.predict("Outage", "The outage hits all users since noon.")
    assert {cls for cls, _ in prediction.shares} == set(Priority)
    assert sum(value for _, value in prediction.shares) == pytest.approx(1.0)
    assert prediction.share(prediction.priority) == prediction.confidence


def test_the_floor_still_lifts_a_low_the_guard_read_as_medium() -> None:
    """The floor acts on the model's Low: a rules' High raises it to High past the guard."""
    assert infer_priority(*UNSURE, {}, RULES).priority is Priority.HIGH
    decision = decide_priority(*UNSURE, {}, RULES, model=UNSURE_MODEL, floor=Floor.HIGH)
    assert decision.priority is Priority.HIGH
    assert "read as Medium" in decision.reason
    assert "raised to High by the rules' floor: " in decision.reason
    at_medium = decide_priority(*UNSURE, {}, RULES, model=UNSURE_MODEL, floor=Floor.MEDIUM)
    assert at_medium.priority is Priority.MEDIUM
    assert "raised" not in at_medium.reason
