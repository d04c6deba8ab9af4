"""Priority inference follows the policy's clauses, keeps the claim, and reads its rules."""

from __future__ import annotations

import re

import pytest

from ingest.priority import PriorityDecision, PriorityRules, infer_priority
from sla.policy import Priority

RULES = PriorityRules.default()
HIGH, MEDIUM, LOW = Priority.HIGH, Priority.MEDIUM, Priority.LOW


def infer(
    body: str, subject: str = "Support request", headers: dict[str, str] | None = None
) -> PriorityDecision:
    """Infer with the default rules; headers default to none."""
    return infer_priority(subject, body, headers or {}, RULES)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Data loss or corruption in production, no workaround: High.
        (
            (
                "About 2,000 contact records are blank in production since the sync. "
                "Restoring them fails with an error."
            ),
            HIGH,
        ),
        (
            (
                "Die Datensätze in unserer Produktion sind gelöscht, die Wiederherstellung "
                "schlägt fehl mit einem Fehler."
            ),
            HIGH,
        ),
        ("Des fichiers ont disparu de notre org de production et la restauration échoue.", HIGH),
        ("Los registros de producción están borrados y restaurar da un error.", HIGH),
        # The same loss outside production: Medium.
        (
            (
                "About 2,000 contact records are blank in our UAT sandbox since the sync. "
                "Restoring them fails with an error. Production is fine."
            ),
            MEDIUM,
        ),
        # The same loss with a workaround: Medium.
        (
            (
                "About 2,000 contact records are blank in production since the sync. "
                "Restoring them fails, but we worked around it by importing last week's export."
            ),
            MEDIUM,
        ),
        # Customer-side loss the working restore can undo: a how-to, Low.
        (
            (
                "We deleted 40 accounts in production by mistake. How do I restore them "
                "with their contacts?"
            ),
            LOW,
        ),
    ],
)
def test_data_loss_clause(body: str, expected: Priority) -> None:
    """Data loss is High only in production with no workaround and a failing service."""
    assert infer(body).priority is expected


@pytest.mark.parametrize(
    "body",
    [
        "Nobody on our team can log in since 08:00, every login ends on a 502 page.",
        "Every call to the API returns HTTP 500 since noon.",
        "All backups failed last night with 'Authentication service unavailable'.",
        "Our account was locked for an unpaid invoice and nobody can log in at all.",
        "La plateforme est en panne: erreur 500 pour tous nos utilisateurs.",
    ],
)
def test_complete_service_failure_is_high(body: str) -> None:
    """Losing all access is High whatever the cause, even a billing lock."""
    decision = infer(body)
    assert decision.priority is HIGH
    assert decision.reason.startswith("complete service failure")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            (
                "Since yesterday every restore takes 3 hours instead of a minute and our call "
                "centre is blocked."
            ),
            HIGH,
        ),
        ("The app has been a bit slow this week, pages take 5 seconds. Workable though.", MEDIUM),
        ("Restores into our QA sandbox are very slow and the testers are blocked.", MEDIUM),
    ],
)
def test_degradation_clause(body: str, expected: Priority) -> None:
    """Slowness is High only when it blocks work in production; otherwise Medium."""
    assert infer(body).priority is expected


@pytest.mark.parametrize(
    "body",
    [
        "The CSV export fails with 'BlockListTooLong' for large archives.",
        "Our nightly backup of one small org failed twice with a lock timeout.",
        "When we try to connect our new dev sandbox it says 'Org already registered'.",
        "Login fails about one in five attempts; retrying immediately works.",
    ],
)
def test_something_misbehaving_with_limited_impact_is_medium(body: str) -> None:
    """A bug, a failed job or a broken feature with limited impact is Medium."""
    assert infer(body).priority is MEDIUM


@pytest.mark.parametrize(
    "body",
    [
        "How can I exclude one object from the daily backups?",
        "Feature request: could you add Parquet as an export format?",
        "Could you send a copy of invoice INV-1 with our VAT number?",
        "Please share your latest SOC 2 report for our vendor review.",
        "Thanks, that answered it - the restore worked perfectly. You can close this.",
        "If we ever lost all accounts in production, how long would a restore take?",
    ],
)
def test_nothing_broken_is_low(body: str) -> None:
    """How-to, feature, billing, compliance requests and closing notes are Low."""
    assert infer(body).priority is LOW


@pytest.mark.parametrize(
    ("subject", "body", "headers", "claimed"),
    [
        ("Priority: HIGH - backup times", "Can backups run at different times?", {}, HIGH),
        ("[Low] export fails", "The export fails with an error.", {}, LOW),
        ("P1 - question", "How do I find our API key?", {}, HIGH),
        ("URGENT invoice", "Please send the invoice.", {}, HIGH),
        ("Question", "Hallo,\n\nPrio: mittel\n\nwie kann ich Flows sichern?", {}, MEDIUM),
        ("Question", "Marking this low: how do I add a seat?", {}, LOW),
        ("Question", "How do I add a seat?", {"X-Priority": "1 (Highest)"}, HIGH),
        ("Question", "How do I add a seat?", {"Importance": "low"}, LOW),
        ("Question", "Please check urgently how to add a seat.", {}, None),
    ],
)
def test_customer_claim_is_kept_apart(
    subject: str, body: str, headers: dict[str, str], claimed: Priority | None
) -> None:
    """Subject, first-line, statement and header claims are kept but never set the label."""
    decision = infer(body, subject=subject, headers=headers)
    assert decision.customer_priority is claimed


def test_claim_is_recategorised_and_explained() -> None:
    """A High claim on a how-to question stays Low, and the reason says so."""
    decision = infer("How can I schedule backups per org?", subject="CRITICAL: schedules")
    assert decision.priority is LOW
    assert decision.customer_priority is HIGH
    assert "customer claimed high" in decision.reason
    assert "recategorised as low" in decision.reason


def test_tone_and_capitals_do_not_raise_priority() -> None:
    """Shouting about a feature request leaves it Low."""
    body = "WE NEED A SLACK INTEGRATION ASAP!!! THIS IS CRITICAL FOR US."
    decision = infer(body, subject="WE NEED SLACK NOW")
    assert decision.priority is LOW
    assert decision.customer_priority is HIGH


def test_quoted_history_and_signature_are_ignored() -> None:
    """Only the customer's new text counts: quotes and signatures cannot raise priority."""
    body = (
        "Thanks, that answered it.\n\nBest,\nSam\n"
        "-- \nNobody can log in? Call our 24/7 line.\n\n"
        "On Tue, 14 May, Support wrote:\n> Production data is lost and restore fails.\n"
    )
    assert infer(body).priority is LOW


def test_reason_quotes_the_evidence() -> None:
    """The reason names the clause and quotes the sentence that matched."""
    decision = infer("Records are blank in production. The restore fails with an error.")
    assert decision.reason.startswith("production data loss: 'Records are blank in production.'")


def test_headers_may_be_a_parsed_mail() -> None:
    """Anything with a header() lookup supplies X-Priority and Importance."""

    class Mail:
        def header(self, name: str, /) -> str | None:
            return "high" if name == "Importance" else None

    decision = infer_priority("Question", "How do I add a seat?", Mail(), RULES)
    assert decision.customer_priority is HIGH


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"languages": []}, "priority.languages: must be a non-empty list"),
        ({"quote_chars": 0}, "priority.quote_chars: must be a positive integer (got 0)"),
        ({"colour": "red"}, "priority.colour: unknown key"),
        ({"features": {"outage": {"en": ["("]}}}, "priority.features.outage.en[0]: "),
        ({"features": {"outage": {"en": "down"}}}, "priority.features.outage.en: must be a list"),
        ({"features": {"gloom": {}}}, "priority.features.gloom: unknown feature"),
        ({"claims": {"label_urgent": []}}, "priority.claims.label_urgent: unknown claim"),
        (
            {"unspecified_environment_is_production": "yes"},
            "priority.unspecified_environment_is_production: must be true or false",
        ),
    ],
)
def test_bad_rules_name_the_dotted_key(data: dict[str, object], message: str) -> None:
    """Invalid configuration raises ValueError naming the key, the problem and the value."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        PriorityRules.from_mapping(data)


def test_rules_are_data_a_team_can_tune() -> None:
    """A team's phrase list replaces the default one for that feature and language."""
    rules = PriorityRules.from_mapping(
        {"features": {"outage": {"en": [r"\bkaput\b"]}}, "languages": ["en"]}
    )
    decision = infer_priority("Help", "Everything is kaput.", {}, rules)
    assert decision.priority is HIGH
    assert rules.languages == ("en",)
