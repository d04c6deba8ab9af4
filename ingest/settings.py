"""The process stage's settings: what processing a message needs to know, and nothing else."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ingest.agents.outbox import AgentMailSettings
from ingest.analysis.core import AnalysisSettings
from ingest.priority.decision import DEFAULT_FLOOR, Floor
from ingest.priority.inference import PriorityRules
from ingest.priority.model import PriorityModel
from sla import tracking

if TYPE_CHECKING:
    from pathlib import Path

    from ingest.triage.classify import ClassifySettings
    from ingest.triage.customers import CustomerDirectory
    from ingest.triage.reply_matching import CaseToken
    from sla.business_hours import BusinessCalendar
    from sla.policy import SlaPolicy


@dataclass(frozen=True)
class ProcessSettings:
    """What the process stage needs to know, and nothing else."""

    support_address: str
    support_name: str
    own_addresses: frozenset[str]
    message_id_domain: str
    token: CaseToken
    first_ref: int
    customers: CustomerDirectory
    policy: SlaPolicy
    calendar: BusinessCalendar
    classify: ClassifySettings
    priority_rules: PriorityRules = field(default_factory=PriorityRules.default)
    priority_model: PriorityModel = field(default_factory=PriorityModel.shipped)
    priority_floor: Floor = DEFAULT_FLOOR
    max_parts: int = 1000
    attachments_dir: Path | None = None
    auto_reply_opens_case: bool = False
    batch_size: int = 50
    agents: AgentMailSettings = field(default_factory=AgentMailSettings)
    # Imports only: the previous system's ticket token, e.g. r"\[Ticket#(\d+)\]".
    ticket_pattern: str = ""
    # How long no automatic mail goes to an address that bounced permanently.
    bounce_suppression: timedelta = timedelta(days=7)
    # Attempts at a message that never settles (a poison message) before quarantine.
    max_attempts: int = 3
    # How long another instance leaves a claimed message alone: more than one attempt.
    claim_period: timedelta = timedelta(seconds=90)

    @property
    def analysis(self) -> AnalysisSettings:
        """The part the pure analysis needs (sent once to a worker process)."""
        return AnalysisSettings(
            classify=self.classify,
            priority_rules=self.priority_rules,
            priority_model=self.priority_model,
            priority_floor=self.priority_floor,
            max_parts=self.max_parts,
            auto_reply_opens_case=self.auto_reply_opens_case,
        )

    def calendar_for(self, tz_name: str) -> BusinessCalendar:
        """The business calendar in a customer's time zone."""
        return dataclasses.replace(self.calendar, tz=ZoneInfo(tz_name))

    @property
    def sla(self) -> tracking.SlaContext:
        """What the SLA clocks need: the policy, the calendar and the reminder share."""
        return tracking.SlaContext(
            self.policy, self.calendar, self.policy.reminder_share, self.customers.hours_for
        )
