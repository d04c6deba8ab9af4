"""The pure, CPU-heavy part of processing one raw message: parse, classify, prioritise."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingest.errors import ParseError
from ingest.mime.parse import parse_message
from ingest.priority.decision import DEFAULT_FLOOR, Floor, decide_priority
from ingest.priority.inference import PriorityDecision, PriorityRules
from ingest.priority.model import PriorityModel
from ingest.triage.classify import Classification, ClassifySettings, Kind, classify_delivery

if TYPE_CHECKING:
    from ingest.mime.parsed import ParsedMail


@dataclass(frozen=True)
class AnalysisSettings:
    """What the analysis needs; picklable, so a worker process can receive it once."""

    classify: ClassifySettings
    priority_rules: PriorityRules = field(default_factory=PriorityRules.default)
    # The trained model decides; the rules keep a floor under it (ingest/priority/decision).
    priority_model: PriorityModel = field(default_factory=PriorityModel.shipped)
    priority_floor: Floor = DEFAULT_FLOOR
    max_parts: int = 1000
    auto_reply_opens_case: bool = False


@dataclass(frozen=True)
class Analysis:
    """What the database step needs from the raw bytes; ``mail`` is None when parsing failed.

    ``priority`` is computed up front only for mail that is likely to open a case; the
    database step asks for it otherwise (a reply that threads onto nothing).
    """

    mail: ParsedMail | None
    verdict: Classification | None = None
    priority: PriorityDecision | None = None
    parse_error: str | None = None


def analyse(raw: bytes, settings: AnalysisSettings, *, null_sender: bool) -> Analysis:
    """Parse, classify and (for likely new cases) prioritise one message; no I/O."""
    try:
        mail = parse_message(raw, max_parts=settings.max_parts)
    except ParseError as exc:
        return Analysis(None, parse_error=exc.reason)
    verdict = classify_delivery(mail, settings.classify, null_sender=null_sender)
    # The tree served the classifier; it is large and not needed past this point.
    mail = dataclasses.replace(mail, tree=None)
    wanted = _may_open_case(mail, verdict, settings)
    return Analysis(mail, verdict, prioritise(mail, settings) if wanted else None)


def prioritise(mail: ParsedMail, settings: AnalysisSettings) -> PriorityDecision:
    """The priority ``mail`` gets: the model's, over the rules' floor, with the claim kept."""
    return decide_priority(
        mail.subject,
        mail.text,
        mail,
        settings.priority_rules,
        model=settings.priority_model,
        floor=settings.priority_floor,
    )


def _may_open_case(mail: ParsedMail, verdict: Classification, settings: AnalysisSettings) -> bool:
    """Whether the mail will probably open a case: written by a person and not a reply.

    Replies usually thread onto a case and never need a priority; computing one for
    them would cost about as much as parsing.
    """
    person = not verdict.is_automatic or (
        settings.auto_reply_opens_case and verdict.kind is Kind.AUTO_REPLY
    )
    return person and not (mail.in_reply_to or mail.references)
