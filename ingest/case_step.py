"""One message's case work inside its transaction: thread, open or add, acknowledge."""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ingest.agents import mail as agent_mail
from ingest.agents.outbox import Turn, queue_notification
from ingest.outcome import Outcome, processed
from ingest.triage.classify import Kind, is_our_address
from ingest.triage.reply_matching import choose_thread, is_participant, referenced_ids
from ingest.triage.subject import bare_subject
from ingest.work import InboundRow, UnitOfWork
from sla import tracking
from sla.policy import Priority, describe_target
from storage import blobs, cases, outbox, suppressions
from storage.models import Case
from storage.statuses import InboundStatus
from storage.suppressions import is_system_address

if TYPE_CHECKING:
    from typing import Any, Unpack

    from sqlalchemy.orm import Session

    from ingest.mime.parsed import ParsedMail
    from ingest.settings import ProcessSettings
    from ingest.triage.customers import CustomerRule

# The unit of work lives in ingest.work, below the agents' workflow that takes it too;
# the process stage imports it from here with the step.
__all__ = ["CaseStep", "InboundRow", "UnitOfWork"]


class CaseStep:
    """One message's processing inside its transaction (kept apart for readability).

    Subclasses (``ingest.history.archive_step.ArchiveStep``) override ``run`` and build on
    the extension points below: ``existing_case``, ``new_case``, ``store_message`` and
    ``write_events``.
    """

    def __init__(self, settings: ProcessSettings, s: Session, work: UnitOfWork) -> None:
        self.cfg = settings
        self.s, self.work = s, work
        self.turn = Turn(s, settings, work)
        self.row, self.mail, self.verdict, self.now = work.row, work.mail, work.verdict, work.now
        self.sender = self.mail.from_.addr if self.mail.from_ else (self.row.mail_from or "")
        # Audit entries of this step not written yet: they go in together, one statement,
        # before anything else may add entries (ids follow the order of the calls).
        self._events: list[dict[str, Any]] = []

    def run(self) -> Outcome:
        """Decide what the message does to which case, and do it."""
        case = self.existing_case()
        if self.verdict.kind is Kind.LOOP:
            return Outcome(InboundStatus.SUPPRESSED, reason=f"loop: {self.verdict.reason}")
        self._remember_bounce()
        role = agent_mail.judge(self.turn, case)
        if role is not None:
            return self._agent_mail(role)
        if case is None and self.verdict.is_automatic and not self._opens_case_anyway():
            return Outcome(
                InboundStatus.SUPPRESSED, reason=f"{self.verdict.kind}: {self.verdict.reason}"
            )
        if case is None:
            return self._open_case()
        return self._add_to_case(case)

    def _remember_bounce(self) -> None:
        """A permanent bounce stops automatic mail to its recipient for a while (breaker)."""
        bounce = self.verdict.bounce
        if self.verdict.kind is not Kind.BOUNCE or bounce is None:
            return
        if not bounce.is_permanent or not bounce.recipient or "@" not in bounce.recipient:
            return
        reason = f"bounced {bounce.status or ''} {bounce.diagnostic or ''}".strip()
        until = self.now + self.cfg.bounce_suppression
        suppressions.suppress(self.s, bounce.recipient, reason, self.now, until)

    def _agent_mail(self, role: agent_mail.Role) -> Outcome:
        """An agent's reply, note or commands, or mail without the authority it claims."""
        case = role.case
        if role.action is agent_mail.Action.ON_BEHALF and role.customer:
            rule = self.cfg.customers.resolve(role.customer)
            case = self._create_case(rule, role.customer, start_clock=True)
        message_id = self._add_message(case, role.stored_as(self.mail)) if case else None
        self._write_events()
        extra = agent_mail.act(self.turn, role, case, message_id)
        if role.action is agent_mail.Action.ON_BEHALF and case is not None and message_id:
            # Every mail sent in a customer's name is announced to the team.
            queue_notification(self.turn, case, message_id, is_new_case=True, opened_by=role.sender)
        if case is None:
            return Outcome(
                InboundStatus.SUPPRESSED, reason=f"{role.action}: {role.reason}", extra=extra
            )
        return processed(case, opened=role.case is None, extra=extra)

    def _opens_case_anyway(self) -> bool:
        return self.cfg.auto_reply_opens_case and self.verdict.kind is Kind.AUTO_REPLY

    def existing_case(self) -> Case | None:
        """The case this message answers, by message ids, then by the subject's case token."""
        ids = referenced_ids(self.mail)
        if self.verdict.bounce and self.verdict.bounce.original_message_id:
            ids.insert(0, self.verdict.bounce.original_message_id)
        found = choose_thread(ids, cases.thread_hits(self.s, ids), self._may_join)
        if found is not None:
            return found
        for ref in self.cfg.token.refs_in(self.mail.subject):
            case = cases.case_by_ref(self.s, ref)
            if case is not None and self._may_join(case):
                return case
        return None

    def _may_join(self, case: Case) -> bool:
        rule = self.cfg.customers.match(case.customer_address)
        return is_participant(
            self.sender,
            customer_address=case.customer_address,
            participants=case.participants,
            customer_domains=rule.domains if rule else (),
            agent=self.verdict.kind is Kind.AGENT,
        )

    def _open_case(self) -> Outcome:
        rule = self.cfg.customers.resolve(self.sender)
        case = self._create_case(rule, start_clock=True)
        message_id = self._add_message(case)
        acked = self._queue_ack(case)
        self._write_events()
        queue_notification(self.turn, case, message_id, is_new_case=True)
        return processed(case, opened=True, extra={"ack": acked})

    def new_case(self, rule: CustomerRule, customer: str | None = None) -> Case:
        """A case for ``customer`` (the sender if None), flushed, with its opening entries."""
        case = self._create_case(rule, customer)
        self._write_events()
        return case

    def _create_case(
        self, rule: CustomerRule, customer: str | None = None, *, start_clock: bool = False
    ) -> Case:
        tz = ZoneInfo(rule.timezone)
        plan = self.cfg.policy.plan(rule.plan_on(self.now.astimezone(tz).date()))
        decision = self.work.priority()
        # The reference first: its counter row's lock orders the instances' case
        # creation, so an upsert after it (customer, contact) cannot deadlock.
        ref = cases.next_ref(self.s, self.cfg.first_ref)
        cust_id = cases.customer_id(self.s, rule.name, self.now)
        case = Case(
            ref=ref,
            subject=self.mail.subject[:2000],
            status="open",
            priority=decision.priority.value,
            priority_reason=decision.reason,
            customer_priority=decision.customer_priority.value
            if decision.customer_priority
            else None,
            plan=plan.name,
            customer_id=cust_id,
            customer_address=(customer or self.sender).lower(),
            timezone=rule.timezone,
            participants=self._cc_participants(),
            opened_at=self.now,
            updated_at=self.now,
        )
        if start_clock:
            # Before the case's INSERT, so that its deadline goes in with it; inserts it.
            tracking.record_opened(self.s, case, context=self.cfg.sla)
        else:
            cases.add_case(self.s, case)
        if customer is None:
            cases.touch_contact(self.s, self.sender, self._sender_name(), cust_id, self.now)
        else:  # opened by an agent (#customer): the contact is the customer
            cases.touch_contact(self.s, customer, "", cust_id, self.now)
        self._event(case, "opened", actor=self.sender, data={"plan": plan.name})
        self._event(
            case,
            "priority_set",
            detail=decision.reason,
            data={"priority": case.priority, "customer_priority": case.customer_priority},
        )
        return case

    def _sender_name(self) -> str:
        return self.mail.from_.name if self.mail.from_ else ""

    def _cc_participants(self) -> list[str]:
        ours = self.cfg.own_addresses
        found = [
            a.key for a in (*self.mail.to, *self.mail.cc) if a.key not in ours and "@" in a.key
        ]
        return sorted(set(found) - {self.sender.lower()})

    def _add_to_case(self, case: Case) -> Outcome:
        message_id = self._add_message(case)
        case.updated_at = self.now
        if self.verdict.kind is Kind.BOUNCE and self.verdict.bounce:
            b = self.verdict.bounce
            self._event(
                case,
                "bounce",
                actor=self.sender,
                detail=self.verdict.reason,
                data={"recipient": b.recipient, "status": b.status, "diagnostic": b.diagnostic},
            )
        elif self.verdict.kind is Kind.CUSTOMER:
            # Agent mail never gets here: agent_mail.judge routes all of it (signed or
            # suspicious) before a message is added to a case.
            # Reopens a pending, solved or closed case and restarts the clock it owes.
            self._write_events()
            tracking.record_customer_reply(
                self.s, case, self.now, context=self.cfg.sla, actor=self.sender
            )
            queue_notification(self.turn, case, message_id, is_new_case=False)
        self._write_events()
        return processed(case)

    def store_message(self, case: Case, shape: agent_mail.StoredAs | None = None) -> int:
        """Add the mail to ``case`` as ``shape`` says (else as received); the message's id."""
        message_id = self._add_message(case, shape)
        self._write_events()
        return message_id

    def _add_message(self, case: Case, shape: agent_mail.StoredAs | None = None) -> int:
        m = self.mail
        kind = shape.kind if shape else self.verdict.kind.value
        values = {
            "case_id": case.id,
            "inbound_id": self.row.id,
            "direction": shape.direction if shape else "in",
            "kind": kind,
            "from_addr": self.sender.lower(),
            "from_name": self._sender_name()[:200],
            "to_addrs": [a.addr for a in m.to],
            "cc_addrs": [a.addr for a in m.cc],
            "subject": m.subject[:2000],
            "message_id": shape.message_id if shape else m.message_id,
            "in_reply_to": m.in_reply_to[0] if m.in_reply_to else None,
            "references": list(m.references),
            "at": self.now,
            "text": shape.text if shape else m.text,
            "dedupe_key": m.content_key,
        }
        msg_id = cases.add_message_row(self.s, values)
        digests = [att.sha256 for att in m.attachments]  # a property that hashes the content
        for att, digest in zip(m.attachments, digests, strict=True):
            blobs.store_blob(self.s, digest, att.data, self.cfg.attachments_dir)
        cases.add_attachment_rows(
            self.s,
            [
                {
                    "message_id": msg_id,
                    "filename": att.filename[:255],
                    "content_type": att.content_type[:255],
                    "size": att.size,
                    "sha256": digest,
                    "is_inline": att.is_inline,
                }
                for att, digest in zip(m.attachments, digests, strict=True)
            ],
        )
        detail = (
            "" if not self.verdict.is_automatic else f"{self.verdict.kind}: {self.verdict.reason}"
        )
        self._event(
            case,
            "message_added",
            actor=self.sender,
            detail=detail,
            data={"message_id": m.message_id, "kind": kind},
        )
        return msg_id

    def _queue_ack(self, case: Case) -> bool:
        if self.verdict.is_automatic or self.verdict.kind is Kind.AGENT:
            self._event(
                case,
                "ack_suppressed",
                detail=f"suppressed: {self.verdict.kind}: {self.verdict.reason}",
            )
            return False
        to = _ack_address(self.mail, self.sender)
        if is_our_address(to, self.cfg.own_addresses):
            self._event(case, "ack_suppressed", detail=f"suppressed: our own address {to}")
            return False
        if is_system_address(to):
            self._event(case, "ack_suppressed", detail=f"suppressed: system address {to}")
            return False
        return self._enqueue_ack(case, to)

    def _enqueue_ack(self, case: Case, to: str) -> bool:
        plan = self.cfg.policy.plan(case.plan)
        target = plan.target("first", Priority(case.priority))
        subject = "Re: " + self.cfg.token.subject_with_token(case.ref, bare_subject(case.subject))
        message_id = outbox.new_message_id(f"case{case.ref}", self.cfg.message_id_domain)
        refs = [*self.mail.references, *([self.mail.message_id] if self.mail.message_id else [])]
        due = case.first_response_due
        context = {
            "case_ref": case.ref,
            "ref_token": self.cfg.token.render(case.ref),
            "subject": case.subject,
            # A person is greeted by their own name, never by the organisation's (or the
            # config path an unnamed [[customers]] entry stands under).
            "customer_name": _greeting_name(self._sender_name()),
            "customer_address": to,
            "plan": case.plan,
            "priority": case.priority,
            "priority_reason": case.priority_reason,
            "first_response_words": describe_target(target, plan.clock),
            # In the customer's time zone when rendered (the templates' ``local`` filter).
            "first_response_due": due.isoformat() if due else "",
            "customer_timezone": case.timezone,
            "support_name": self.cfg.support_name,
            "support_address": self.cfg.support_address,
        }
        queued = outbox.enqueue(
            self.s,
            kind="ack",
            case_id=case.id,
            to_addrs=[to],
            subject=subject,
            template="ack",
            context=context,
            message_id=message_id,
            in_reply_to=self.mail.message_id,
            references=refs[-20:],
            dedupe_key=f"ack:case:{case.ref}",
            now=self.now,
            is_fresh_key=True,  # the case is new: its reference was never acknowledged
        )
        if queued:
            # A row only: nothing in this transaction reads the acknowledgement back.
            cases.add_message_rows(
                self.s,
                [
                    {
                        "case_id": case.id,
                        "direction": "out",
                        "kind": "ack",
                        "from_addr": self.cfg.support_address,
                        "from_name": self.cfg.support_name,
                        "to_addrs": [to],
                        "subject": subject,
                        "message_id": message_id,
                        "in_reply_to": self.mail.message_id,
                        "references": refs[-20:],
                        "at": self.now,
                        "text": "",
                    }
                ],
            )
            self._event(case, "ack_queued", data={"to": to, "message_id": message_id})
        return queued

    def _event(self, case: Case, kind: str, **fields: Unpack[cases.EventFields]) -> None:
        """An audit entry for :meth:`_write_events` (as ``cases.add_event``, deferred)."""
        self._events.append(cases.event_row(case.id, kind, self.now, **fields))

    def _write_events(self) -> None:
        """Write the entries held so far, in one statement (before others may add theirs)."""
        cases.add_events(self.s, self._events)
        self._events.clear()


def _ack_address(mail: ParsedMail, sender: str) -> str:
    """Where the acknowledgement goes: the sender, or their Reply-To in their own domain.

    RFC 5322 3.6.2 sends replies to Reply-To, but an acknowledgement is automatic and
    quotes the subject: to any Reply-To it would carry a stranger's text, in our name,
    to a third party of their choosing. So a Reply-To counts only within the sender's
    own domain (a shared team mailbox, a ticket alias); otherwise the sender is answered.
    """
    if not mail.reply_to:
        return sender
    reply_to = mail.reply_to[0].addr
    sender_domain = sender.rpartition("@")[2].lower()
    domain = reply_to.rpartition("@")[2].lower()
    same = bool(sender_domain) and (domain == sender_domain or domain.endswith("." + sender_domain))
    return reply_to if same else sender


def _greeting_name(display_name: str) -> str:
    """The name to greet by: the sender's display name, unless it is an address or empty."""
    name = " ".join(display_name.split())
    return "" if "@" in name else name
