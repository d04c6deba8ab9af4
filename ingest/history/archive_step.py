"""Processing one message of an imported history: threads rebuilt, nothing sent, no clocks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ingest.agents.mail import StoredAs
from ingest.case_step import CaseStep
from ingest.outcome import Outcome, processed
from ingest.triage.classify import Kind
from storage import cases
from storage.statuses import InboundStatus

if TYPE_CHECKING:
    from storage.models import Case


class ArchiveStep(CaseStep):
    """Like a live message, minus everything that would reach a person or start a clock.

    Agents' replies in the history are stored as outbound agent messages and count as
    the case's first response; cases are closed as they are built (``--open-since``
    reopens the ones still waiting, afterwards).
    """

    def run(self) -> Outcome:
        """Thread the message onto its case, or open a closed one for it."""
        if self.verdict.kind is Kind.LOOP:
            return Outcome(InboundStatus.SUPPRESSED, reason=f"loop: {self.verdict.reason}")
        case = self.existing_case() or self._case_by_ticket()
        if self.verdict.kind is Kind.AGENT:
            return self._agent_history(case)
        if case is None and self.verdict.is_automatic:
            return Outcome(
                InboundStatus.SUPPRESSED, reason=f"{self.verdict.kind}: {self.verdict.reason}"
            )
        opened = case is None
        if case is None:
            case = self._open_archived(self.sender)
        self.store_message(case)
        self._touch(case)
        return processed(case, opened=opened)

    def _agent_history(self, case: Case | None) -> Outcome:
        opened = case is None
        if case is None:
            customer = self._first_customer_recipient()
            if customer is None:
                return Outcome(
                    InboundStatus.SUPPRESSED, reason="agent mail to nobody outside the team"
                )
            case = self._open_archived(customer)
        shape = StoredAs(
            direction="out", kind="agent", message_id=self.mail.message_id, text=self.mail.text
        )
        self.store_message(case, shape)
        if case.first_responded_at is None:
            case.first_responded_at = self.now
        self._touch(case)
        return processed(case, opened=opened)

    def _open_archived(self, customer: str) -> Case:
        rule = self.cfg.customers.resolve(customer)
        case = self.new_case(rule, None if customer == self.sender else customer)
        case.status = "closed"
        case.closed_at = self.now
        case.external_ref = self._ticket_ref()
        cases.add_event(
            self.s, case, "imported", self.now, detail="opened from an imported history"
        )
        return case

    def _touch(self, case: Case) -> None:
        case.updated_at = max(case.updated_at, self.now)
        if case.status == "closed":
            case.closed_at = max(case.closed_at or self.now, self.now)

    def _first_customer_recipient(self) -> str | None:
        ours = self.cfg.own_addresses
        agents = self.cfg.classify.agent_addresses
        domains = self.cfg.classify.agent_domains
        for address in (*self.mail.to, *self.mail.cc):
            if (
                address.key not in ours
                and address.key not in agents
                and address.domain not in domains
            ):
                return address.addr
        return None

    def _ticket_ref(self) -> str | None:
        pattern = self.cfg.ticket_pattern
        match = re.search(pattern, self.mail.subject) if pattern else None
        return match.group(1) if match and match.groups() else None

    def _case_by_ticket(self) -> Case | None:
        ref = self._ticket_ref()
        return cases.case_by_external_ref(self.s, ref) if ref else None
