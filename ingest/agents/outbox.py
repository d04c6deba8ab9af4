"""Outbox rows of the agents' email workflow: notifications, relayed replies, command errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ingest.agents.commands import strip_quoted_history
from ingest.agents.reply_address import reply_address
from ingest.triage.subject import bare_subject
from sla.policy import Priority, describe_target
from storage import cases, outbox

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

    from ingest.agents.commands import CommandError
    from ingest.mime.parsed import ParsedMail
    from ingest.triage.classify import ClassifySettings
    from ingest.triage.customers import CustomerDirectory
    from ingest.triage.reply_matching import CaseToken
    from ingest.work import UnitOfWork
    from sla.business_hours import BusinessCalendar
    from sla.policy import SlaPolicy
    from sla.tracking import SlaContext
    from storage.models import Case, Message

RATE_WINDOW = timedelta(hours=1)
MAX_NOTIFY_TEXT = 20_000  # characters of customer text in one notification
MAX_REFERENCES = 20


@dataclass(frozen=True)
class AgentMailSettings:
    """The ``[agents]`` settings that processing needs (who agents are is in ClassifySettings)."""

    team_address: str = ""
    reply_secret: str = field(default="", repr=False)
    # Secrets rotated out: still accepted on reply addresses, never used to sign.
    previous_reply_secrets: tuple[str, ...] = field(default=(), repr=False)
    require_authentication: bool = False
    trusted_authserv_ids: frozenset[str] = frozenset()
    max_relays_per_hour: int = 20
    max_error_mails_per_hour: int = 3
    # Relays by one agent over all cases per rolling hour (each reaches a customer in the
    # support address's name), and the people one relay may reach at most.
    max_relays_per_agent_per_hour: int = 60
    max_relay_recipients: int = 10
    # Agents' names by address, for relays from mail that carries no display name.
    names: tuple[tuple[str, str], ...] = ()

    def name_of(self, address: str) -> str:
        """The name the team gave ``address``, or ""."""
        key = address.lower()
        return next((name for a, name in self.names if a == key), "")


class Desk(Protocol):
    """What agent mail reads from the process stage's settings (ProcessSettings fits)."""

    @property
    def support_address(self) -> str: ...  # noqa: D102 - named by the protocol's docstring
    @property
    def support_name(self) -> str: ...  # noqa: D102
    @property
    def own_addresses(self) -> frozenset[str]: ...  # noqa: D102
    @property
    def message_id_domain(self) -> str: ...  # noqa: D102
    @property
    def token(self) -> CaseToken: ...  # noqa: D102
    @property
    def policy(self) -> SlaPolicy: ...  # noqa: D102
    @property
    def calendar(self) -> BusinessCalendar: ...  # noqa: D102
    @property
    def classify(self) -> ClassifySettings: ...  # noqa: D102
    @property
    def agents(self) -> AgentMailSettings: ...  # noqa: D102
    @property
    def customers(self) -> CustomerDirectory: ...  # noqa: D102
    @property
    def sla(self) -> SlaContext: ...  # noqa: D102


@dataclass(frozen=True)
class Turn:
    """One message's turn at the agents' workflow: its transaction, the settings, its work."""

    session: Session
    desk: Desk
    work: UnitOfWork

    @property
    def mail(self) -> ParsedMail:
        """The message."""
        return self.work.mail

    @property
    def now(self) -> datetime:
        """The time of its processing."""
        return self.work.now


@dataclass(frozen=True)
class Relay:
    """An agent's reply to send on to the customer."""

    case: Case
    agent_address: str
    agent_name: str
    text: str
    message_id: str
    content_key: str
    attachments: tuple[dict[str, str], ...] = ()


def is_agent(address: str, settings: ClassifySettings) -> bool:
    """Whether ``address`` is a configured agent address or at an agent domain."""
    key = address.strip().lower()
    if key in {a.lower() for a in settings.agent_addresses}:
        return True
    return key.rpartition("@")[2] in {d.lower() for d in settings.agent_domains}


def agent_key(address: str) -> str:
    """A short stable stand-in for an agent's address inside dedupe keys (limited to 200)."""
    return hashlib.sha256(address.lower().encode()).hexdigest()[:16]


def relay_key(case_ref: int, agent: str, content_key: str) -> str:
    """The dedupe key of a relayed reply; its prefix counts an agent's relays on a case."""
    return f"relay:{case_ref}:{agent_key(agent)}:{content_key}"


def error_key(case_ref: int | None, agent: str, content_key: str) -> str:
    """The dedupe key of a command error mail; its prefix counts them as for relays."""
    case_part = "new" if case_ref is None else str(case_ref)
    return f"command_error:{case_part}:{agent_key(agent)}:{content_key}"


def sent_within_hour(turn: Turn, key_prefix: str) -> int:
    """Outbox rows queued under ``key_prefix`` in the last hour (the loop brake)."""
    return outbox.count_queued_since(turn.session, key_prefix, turn.now - RATE_WINDOW)


def queue_relay(turn: Turn, relay: Relay) -> bool:
    """Queue the agent's text to the customer and the case's copied participants."""
    case, desk = relay.case, turn.desk
    parent = _customer_parent(turn.session, case)
    refs = [*parent.references, parent.message_id] if parent and parent.message_id else []
    context = {
        "case_ref": case.ref,
        "ref_token": desk.token.render(case.ref),
        "subject": case.subject,
        "text": relay.text,
        "agent_name": relay.agent_name,
        "support_name": desk.support_name,
        "support_address": desk.support_address,
    }
    return _enqueue(
        turn,
        kind="relay",
        case_id=case.id,
        to_addrs=[case.customer_address],
        subject="Re: " + desk.token.subject_with_token(case.ref, _bare(case.subject)),
        template="relay",
        context=context,
        message_id=relay.message_id,
        in_reply_to=parent.message_id if parent else None,
        references=refs[-MAX_REFERENCES:],
        dedupe_key=relay_key(case.ref, relay.agent_address, relay.content_key),
        extra={
            "cc_addrs": _copied(case, desk),
            "from_name": f"{relay.agent_name} via {desk.support_name}",
            "attachments": list(relay.attachments),
        },
    )


def queue_notification(
    turn: Turn, case: Case, message_id: int, *, is_new_case: bool, opened_by: str = ""
) -> bool:
    """Tell the case's owner, else the customer's team, else the team, about a new message.

    ``message_id`` is the stored message's row id (not its Message-ID header).

    Reply-To is the case's signed reply address: answering the notification is how an
    agent works the case. False when nobody is configured to hear about it.
    """
    desk = turn.desk
    rule = desk.customers.match(case.customer_address)
    to = case.owner or (rule.team_address if rule else "") or desk.agents.team_address
    if not to:
        return False
    first = outbox.first_notification_id(turn.session, case.id)
    heading = "New case" if is_new_case else "New message"
    return _enqueue(
        turn,
        kind="notify",
        case_id=case.id,
        to_addrs=[to],
        subject=f"{heading}: " + desk.token.subject_with_token(case.ref, _bare(case.subject)),
        template="notify",
        context=_notify_context(case, turn.mail, desk, is_new_case=is_new_case)
        | {"opened_by": opened_by},
        message_id=outbox.new_message_id(f"case{case.ref}", desk.message_id_domain),
        in_reply_to=first,
        references=[first] if first else [],
        dedupe_key=f"notify:msg:{message_id}",
        extra={"reply_to": signed_reply_to(case.ref, desk)},
        # The message was stored by this transaction: nothing was queued for it yet.
        is_fresh_key=True,
    )


def signed_reply_to(case_ref: int, desk: Desk) -> str | None:
    """The case's signed reply address, or None (the support address) without a secret."""
    secret = desk.agents.reply_secret
    return reply_address(desk.support_address, case_ref, secret) if secret else None


def queue_command_error(
    turn: Turn, case: Case | None, agent: str, errors: Sequence[CommandError]
) -> bool:
    """Answer an agent whose commands were not understood; nothing else happened."""
    mail, desk = turn.mail, turn.desk
    ref = case.ref if case is not None else None
    refs = [*mail.references, *([mail.message_id] if mail.message_id else [])]
    context = {
        "case_ref": ref,
        "ref_token": desk.token.render(ref) if ref is not None else "",
        "subject": mail.subject,
        "errors": [{"line": e.line, "problem": e.problem} for e in errors],
        "support_name": desk.support_name,
    }
    return _enqueue(
        turn,
        kind="command_error",
        case_id=case.id if case is not None else None,
        to_addrs=[agent],
        subject="Not relayed: " + (bare_subject(mail.subject) or "(no subject)"),
        template="command_error",
        context=context,
        message_id=outbox.new_message_id(
            f"case{ref}" if ref is not None else "mail2case", desk.message_id_domain
        ),
        in_reply_to=mail.message_id,
        references=refs[-MAX_REFERENCES:],
        dedupe_key=error_key(ref, agent, mail.content_key),
        extra={"reply_to": signed_reply_to(ref, desk) if ref is not None else None},
    )


def _enqueue(turn: Turn, *, extra: dict[str, Any], is_fresh_key: bool = False, **row: Any) -> bool:
    """outbox.enqueue with the columns it does not name (Cc, sender name, Reply-To, files)."""
    return outbox.enqueue(turn.session, **row, now=turn.now, extra=extra, is_fresh_key=is_fresh_key)


def _notify_context(
    case: Case, mail: ParsedMail, desk: Desk, *, is_new_case: bool
) -> dict[str, Any]:
    text = strip_quoted_history(mail.text) or mail.text
    if len(text) > MAX_NOTIFY_TEXT:
        text = text[:MAX_NOTIFY_TEXT] + "\n[... truncated; the whole message is on the case]"
    words, due = _running_target(case, desk.policy)
    sender, customer = mail.from_, case.customer_address.lower()
    return {
        "case_ref": case.ref,
        "ref_token": desk.token.render(case.ref),
        "subject": case.subject,
        # The sender's display name only next to the sender's own address: "Carol" printed
        # beside the customer's address would make a stranger's text read as Carol's.
        "customer_name": sender.name if sender and sender.key == customer else "",
        "customer_address": case.customer_address,
        "sender_name": sender.name if sender else "",
        "sender_address": sender.addr if sender else "",
        "plan": case.plan,
        "priority": case.priority,
        "priority_reason": case.priority_reason,
        "due_words": words,
        # In the team's time zone when rendered (the templates' ``local`` filter).
        "due_at": due.isoformat() if due is not None else None,
        "team_timezone": desk.calendar.tz.key,
        "text": text,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in mail.attachments
        ],
        "is_new_case": is_new_case,
    }


def _running_target(case: Case, policy: SlaPolicy) -> tuple[str, datetime | None]:
    plan = policy.plan(case.plan)
    priority = Priority(case.priority)
    if case.first_responded_at is None and case.first_response_due is not None:
        target = describe_target(plan.target("first", priority), plan.clock)
        return f"first response {target}", case.first_response_due
    if case.next_update_due is not None:
        target = describe_target(plan.target("update", priority), plan.clock)
        return f"next update {target}", case.next_update_due
    return "no running target", None


def _bare(subject: str) -> str:
    return bare_subject(subject) or subject


def _copied(case: Case, desk: Desk) -> list[str]:
    """Participants who get the relay too: never us, an agent, or the customer twice.

    At most ``max_relay_recipients`` in all, the customer included: a mail that copied
    hundreds of people does not make every answer a mass mailing from the support address.
    """
    skip = {*desk.own_addresses, case.customer_address.lower()}
    copied = [
        p for p in case.participants if p.lower() not in skip and not is_agent(p, desk.classify)
    ]
    return copied[: max(desk.agents.max_relay_recipients - 1, 0)]


def relays_by_agent_within_hour(turn: Turn, agent: str) -> int:
    """Relays queued for ``agent`` on any case in the last hour."""
    return outbox.count_relays_by_agent_since(
        turn.session, agent_key(agent), turn.now - RATE_WINDOW
    )


def _customer_parent(session: Session, case: Case) -> Message | None:
    """The customer's latest message: what the relay answers, for the customer's threading."""
    senders = {case.customer_address.lower(), *(p.lower() for p in case.participants)}
    return cases.latest_customer_message(session, case.id, senders)
