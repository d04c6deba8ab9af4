"""Priority inference follows the policy's clauses, keeps the claim, and reads its rules."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.priority.inference import PriorityDecision, PriorityRules, infer_priority
from sla.policy import Priority

RULES = PriorityRules.default()
HIGH, MEDIUM, LOW = Priority.HIGH, Priority.MEDIUM, Priority.LOW
RANK = {HIGH: 2, MEDIUM: 1, LOW: 0}


def infer(
    body: str, subject: str = "Support request", headers: dict[str, str] | None = None
) -> PriorityDecision:
    """Infer with the default rules; headers default to none."""
    return infer_priority(subject, body, headers or {}, RULES)


# Serious problems written in general support language, one per symptom class; each
# is High as written (production or no environment named, no workaround).
SERIOUS = [
    "Since 09:00 every request to the API returns HTTP 503 in production.",
    "Nobody in our company can sign in since this morning.",
    "The platform has been unreachable for two hours.",
    "Every page load now takes 40 seconds and half of the requests time out.",
    "Since the upgrade all reports are 30x slower and our team is blocked.",
    "All invoice amounts in production were overwritten with zeros last night.",
    "Since Monday every order in our live shop is charged twice.",
    "About 3,000 contact records are blank in production since the sync.",
    "Customers can see other customers' invoices in their portal.",
    "Every export job fails for all of our accounts since the release.",
]


@pytest.mark.parametrize("body", SERIOUS)
def test_serious_problem_in_production_without_workaround_is_high(body: str) -> None:
    """Outage, severe degradation, data damage and exposure in production are High."""
    assert infer(body).priority is HIGH


@pytest.mark.parametrize(
    ("body", "reason_start"),
    [
        ("Every call to your API returns 502 Bad Gateway.", "complete service failure"),
        ("Our whole team is locked out of the admin.", "complete service failure"),
        ("Queries are 15 times slower since Tuesday.", "severe degradation"),
        ("Payroll amounts are wrong on every payslip in production.", "production data loss"),
        ("Our data was exposed to another tenant.", "security exposure"),
    ],
)
def test_reason_names_the_symptom_class(body: str, reason_start: str) -> None:
    """The reason starts with the class that decided and quotes the sentence."""
    decision = infer(body)
    assert decision.reason.startswith(reason_start)
    assert f"'{body}'" in decision.reason


@pytest.mark.parametrize(
    "environment",
    [
        "in our sandbox",
        "in the staging environment",
        "in our UAT org",
        "in the QA cluster",
        "in our dev instance",
        "in pre-production",
        "in the full copy sandbox",
        "in test mode",
        "in unserer Testumgebung",
        "dans notre environnement de recette",
    ],
)
def test_the_same_problem_outside_production_is_medium(environment: str) -> None:
    """Data loss or an outage in a non-production environment is Medium."""
    assert infer(f"All contact records are blank {environment} since the sync.").priority is MEDIUM
    assert infer(f"Every request fails with HTTP 500 {environment}.").priority is MEDIUM


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # The mention nearest to the problem decides.
        ("Our sandbox is fine. Every request to production returns HTTP 503.", HIGH),
        ("We seed sandboxes from production. In the sandbox, all records are blank.", MEDIUM),
        ("All records in the staging org are blank. Production is not affected.", MEDIUM),
        # A sentence saying production is fine places the problem elsewhere.
        ("All records are blank after the refresh. Production is fine.", MEDIUM),
        ("Every job fails in production and in the sandboxes.", HIGH),
    ],
)
def test_nearest_environment_mention_wins(body: str, expected: Priority) -> None:
    """The environment mentioned nearest the problem, not the first one, counts."""
    assert infer(body).priority is expected


def test_unnamed_environment_defaults_to_production_unless_configured() -> None:
    """No environment named means the customer's live service; a team may turn that off."""
    body = "All our contact records are blank since last night's sync."
    assert infer(body).priority is HIGH
    rules = PriorityRules.from_mapping({"unspecified_environment_is_production": False})
    assert infer_priority("Help", body, {}, rules).priority is MEDIUM


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Every refund call returns 500. Refunding in the dashboard works for now.", MEDIUM),
        ("The nightly export fails for everyone; we export manually, which works.", MEDIUM),
        (
            "All contacts are blank in production. We restored them from our own CSV for now.",
            MEDIUM,
        ),
        ("All contacts are blank in production. There is no workaround.", HIGH),
        ("Every login fails. Resetting passwords doesn't help either.", HIGH),
    ],
)
def test_workaround_clause(body: str, expected: Priority) -> None:
    """A working workaround makes a serious problem Medium; a failed one does not."""
    assert infer(body).priority is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("One of our users cannot log in; all other users sign in normally.", MEDIUM),
        ("Nobody can log in since 08:00.", HIGH),
        ("Occasionally a webhook arrives twice. Retrying works.", MEDIUM),
        ("About 1 in 20 exports fails with a timeout error.", MEDIUM),
        ("Every export fails with a timeout error.", HIGH),
    ],
)
def test_scope_clause(body: str, expected: Priority) -> None:
    """A failure of everyone or everything is High; one user or now and then is Medium."""
    assert infer(body).priority is expected


@pytest.mark.parametrize(
    "body",
    [
        "The CSV export fails with an error for large archives.",
        "The preview shows the wrong font; the sent emails are correct.",
        "The monthly report shows last month's numbers.",
        "The dashboard has been a bit slow this week. Workable though.",
        "The settings page won't save the retention value.",
        "Our weekly digest email didn't arrive, but the report is in the dashboard.",
        "Webhooks to our new staging store never arrive.",
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
        "It would be nice to have a dark mode.",
        "Could you send a copy of invoice INV-1 with our VAT number?",
        "Please send us your DPA and the list of sub-processors for our GDPR review.",
        "Please share your latest SOC 2 report for our vendor review.",
        "Thanks, that answered it - the restore worked perfectly. You can close this.",
        "If we ever lost all accounts in production, how long would a restore take?",
        "Why can't I find the export button on the orders page?",
    ],
)
def test_nothing_broken_is_low(body: str) -> None:
    """How-to, feature, billing, compliance requests and closing notes are Low."""
    assert infer(body).priority is LOW


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Customer-side deletion the working restore can undo: a how-to question.
        ("We deleted 40 accounts in production by mistake. How do I restore them?", LOW),
        # The same deletion when the service's restore fails is production data loss.
        (
            (
                "We deleted 40 accounts in production by mistake. The restore fails with an "
                "error every time and we have no other copy."
            ),
            HIGH,
        ),
        # A question that describes a real failure is a failure, not a how-to.
        ("Why do all our API calls return 503 since noon?", HIGH),
        ("How do we get the login page back? It fails with an error for us.", MEDIUM),
    ],
)
def test_questions_about_failures_are_failures(body: str, expected: Priority) -> None:
    """Only a restorable customer-side loss asked as a how-to stays Low."""
    assert infer(body).priority is expected


def test_unclear_text_leans_medium() -> None:
    """Text that is neither a recognised request nor a recognised problem is Medium."""
    decision = infer("The sync with the ERP looks different since Monday.")
    assert decision.priority is MEDIUM
    assert decision.reason.startswith("no request or question recognised")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Seit heute früh kann sich niemand mehr anmelden.", HIGH),
        ("Die Plattform ist nicht erreichbar.", HIGH),
        ("Wie kann ich ein Objekt von der Sicherung ausschließen?", LOW),
        ("La plateforme est en panne: erreur 500 pour tous nos utilisateurs.", HIGH),
        ("Comment ajouter un second administrateur ?", LOW),
        ("Los registros de producción están borrados y restaurar da un error.", HIGH),
        ("¿Cómo puedo exportar los contactos?", LOW),
        ("Niemand kan inloggen sinds vanochtend.", HIGH),
        ("Hoe kan ik een extra gebruiker toevoegen?", LOW),
        ("Nessun utente può accedere da stamattina.", HIGH),
        ("Come posso aggiungere un utente?", LOW),
        ("Ninguém consegue entrar na plataforma desde hoje.", HIGH),
        ("Como posso adicionar um usuário?", LOW),
    ],
)
def test_multilingual_vocabulary(body: str, expected: Priority) -> None:
    """The same clauses apply in German, French, Spanish, Dutch, Italian and Portuguese."""
    assert infer(body).priority is expected


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


def test_low_claim_does_not_lower_an_outage() -> None:
    """A customer's modest claim is kept but an outage stays High."""
    decision = infer("Marking this low priority, but every API call returns 500.")
    assert decision.priority is HIGH
    assert decision.customer_priority is LOW


def test_quoted_history_and_signature_are_ignored() -> None:
    """Only the customer's new text counts: quotes and signatures cannot raise priority."""
    body = (
        "Thanks, that answered it.\n\nBest,\nSam\n"
        "-- \nNobody can log in? Call our 24/7 line.\n\n"
        "On Tue, 14 May, Support wrote:\n> Production data is lost and restore fails.\n"
    )
    assert infer(body).priority is LOW


def test_forwarded_problem_statement_is_read() -> None:
    """A forwarded colleague's report is the problem; its header lines are not."""
    body = (
        "FYI, see below.\n\n---------- Forwarded message ---------\n"
        "From: Ops <ops@example.com>\nSubject: question\n\n"
        "None of our users can log in since 07:00.\n"
    )
    assert infer(body).priority is HIGH


def test_reason_quotes_the_evidence() -> None:
    """The reason names the clause and quotes the sentence that matched."""
    decision = infer("Records are blank in production. The restore fails with an error.")
    assert decision.reason.startswith("production data loss: 'Records are blank in production.'")
    assert "no workaround: 'The restore fails with an error.'" in decision.reason


# --- properties -------------------------------------------------------------------------

_QUOTED = st.lists(st.sampled_from([*SERIOUS, "How do I add a seat?"]), max_size=3)


@given(st.sampled_from(SERIOUS))
def test_adding_a_workaround_never_raises_priority(body: str) -> None:
    """Stating a workaround can lower the priority, never raise it."""
    with_workaround = f"{body} In the meantime we have a workaround that works."
    assert RANK[infer(with_workaround).priority] <= RANK[infer(body).priority]


@given(st.sampled_from(SERIOUS), st.sampled_from(["sandbox", "staging", "UAT", "dev"]))
def test_moving_a_problem_out_of_production_never_raises_priority(
    body: str, environment: str
) -> None:
    """The same words about a non-production environment are never more urgent."""
    moved = re.sub(r"\b(in )?(production|our live shop)\b", "", body)
    moved = f"{moved.rstrip('.')} in our {environment}."
    assert infer(moved).priority is not HIGH
    assert RANK[infer(moved).priority] <= RANK[infer(body).priority]


@given(st.sampled_from([*SERIOUS, "How can I export contacts?", "Invoice please."]), _QUOTED)
def test_appending_quoted_history_never_changes_the_result(body: str, quoted: list[str]) -> None:
    """Quoted history below an attribution line is ignored, whatever it says."""
    history = "".join(f"> {line}\n" for line in quoted)
    with_history = f"{body}\n\nOn Mon, 3 Jun 2024, Support wrote:\n{history}"
    assert infer(with_history).priority is infer(body).priority


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


def test_megabytes_of_pasted_logs_leave_the_decision_to_the_head() -> None:
    """The problem statement at the top decides; a huge pasted log below it is not read whole."""
    head = "Our production API returns HTTP 503 for every request since 02:00. No workaround.\n"
    logs = "2026-11-26T02:00:01 worker-3 ERROR upstream timeout after 30000 ms\n" * 20_000
    decision = infer_priority("API down", head + logs, {}, PriorityRules.default())
    assert decision.priority is Priority.HIGH


def test_the_shipped_rules_all_compile() -> None:
    """``default()`` skips the check (its patterns compile when first used): they pass it."""
    checked = PriorityRules.from_mapping({}, check_patterns=True)
    assert checked == PriorityRules.default()
    compiled = PriorityRules.default().features
    assert [len(p) for p in compiled.values()] == [
        len(s) for s in PriorityRules.default().feature_sources.values()
    ]
    assert sum(map(len, compiled.values())) > 0


def test_rules_travel_to_a_worker_as_their_sources() -> None:
    """A pickle holds the sources, not compiled patterns, even after they were compiled."""
    rules = PriorityRules.from_mapping({"languages": ["en"]})
    assert rules.claims["label_high"]  # compiled here
    payload = pickle.dumps(rules)
    assert b"_compile" not in payload
    copy = pickle.loads(payload)  # noqa: S301 - our own pickle
    assert copy == rules
    assert [p.pattern for p in copy.claims["label_high"]] == [
        p.pattern for p in rules.claims["label_high"]
    ]
