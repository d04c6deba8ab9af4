"""Outbox rows of the agents' email workflow: notifications, relayed replies, command errors."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, select

from ingest.agents.commands import strip_quoted_history
from ingest.agents.reply_address import reply_address
from ingest.priority.text import strip_subject_prefixes
from sla.policy import Priority, describe_target
from storage import outbox
from storage.models import Message, Outbox

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

    from ingest.agents.commands import CommandError
    from ingest.mime.parsed import ParsedMail
    from ingest.triage.classify import ClassifySettings
    from ingest.triage.customers import CustomerDirectory
    from ingest.triage.reply_matching import CaseToken
    from sla.business_hours import BusinessCalendar
    from sla.policy import SlaPolicy
    from sla.tracking import SlaContext
    from storage.models import Case

RATE_WINDOW = timedelta(hours=1)
MAX_NOTIFY_TEXT = 20_000  # characters of customer text in one notification
MAX_REFERENCES = 20


@dataclass(frozen=True)
class AgentMailSettings:
    """The ``[agents]`` settings that processing needs (who agents are is in ClassifySettings)."""

    team_address: str = ""
    reply_secret: str = field(default="", repr=False)
    require_authentication: bool = False
    trusted_authserv_ids: frozenset[str] = frozenset()
    max_relays_per_hour: int = 20
    max_error_mails_per_hour: int = 3


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


def new_message_id(case_ref: int | None, domain: str) -> str:
    """A fresh Message-ID of ours, naming the case for a human reading headers."""
    prefix = f"case{case_ref}" if case_ref is not None else "mail2case"
    return f"<{prefix}.{secrets.token_hex(8)}@{domain}>"


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


def sent_within_hour(session: Session, key_prefix: str, now: datetime) -> int:
    """Outbox rows queued under ``key_prefix`` in the last hour (the loop brake)."""
    stmt = select(func.count()).where(
        Outbox.dedupe_key.startswith(key_prefix, autoescape=True),
        Outbox.created_at > now - RATE_WINDOW,
    )
    return int(session.scalar(stmt) or 0)


def queue_relay(session: Session, relay: Relay, desk: Desk, now: datetime) -> bool:
    """Queue the agent's text to the customer and the case's copied participants."""
    case = relay.case
    parent = _customer_parent(session, case)
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
        session,
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
        now=now,
        extra={
            "cc_addrs": _copied(case, desk),
            "from_name": f"{relay.agent_name} via {desk.support_name}",
            "attachments": list(relay.attachments),
        },
    )


def queue_notification(  # noqa: PLR0917 - one unit of work's fields
    session: Session,
    case: Case,
    message_id: int,
    mail: ParsedMail,
    desk: Desk,
    now: datetime,
    *,
    is_new_case: bool,
) -> bool:
    """Tell the case's owner, else the customer's team, else the team, about a new message.

    ``message_id`` is the stored message's row id (not its Message-ID header).

    Reply-To is the case's signed reply address: answering the notification is how an
    agent works the case. False when nobody is configured to hear about it.
    """
    rule = desk.customers.match(case.customer_address)
    to = case.owner or (rule.team_address if rule else "") or desk.agents.team_address
    if not to:
        return False
    first = outbox.first_notification_id(session, case.id)
    heading = "New case" if is_new_case else "New message"
    return _enqueue(
        session,
        kind="notify",
        case_id=case.id,
        to_addrs=[to],
        subject=f"{heading}: " + desk.token.subject_with_token(case.ref, _bare(case.subject)),
        template="notify",
        context=_notify_context(case, mail, desk, is_new_case=is_new_case),
        message_id=new_message_id(case.ref, desk.message_id_domain),
        in_reply_to=first,
        references=[first] if first else [],
        dedupe_key=f"notify:msg:{message_id}",
        now=now,
        extra={"reply_to": signed_reply_to(case.ref, desk)},
    )


def signed_reply_to(case_ref: int, desk: Desk) -> str | None:
    """The case's signed reply address, or None (the support address) without a secret."""
    secret = desk.agents.reply_secret
    return reply_address(desk.support_address, case_ref, secret) if secret else None


def queue_command_error(  # noqa: PLR0917 - one unit of work's fields
    session: Session,
    case: Case | None,
    mail: ParsedMail,
    agent: str,
    errors: Sequence[CommandError],
    desk: Desk,
    now: datetime,
) -> bool:
    """Answer an agent whose commands were not understood; nothing else happened."""
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
        session,
        kind="command_error",
        case_id=case.id if case is not None else None,
        to_addrs=[agent],
        subject="Not relayed: " + (strip_subject_prefixes(mail.subject) or "(no subject)"),
        template="command_error",
        context=context,
        message_id=new_message_id(ref, desk.message_id_domain),
        in_reply_to=mail.message_id,
        references=refs[-MAX_REFERENCES:],
        dedupe_key=error_key(ref, agent, mail.content_key),
        now=now,
        extra={"reply_to": signed_reply_to(ref, desk) if ref is not None else None},
    )


def _enqueue(session: Session, *, extra: dict[str, Any], **row: Any) -> bool:
    """outbox.enqueue with the columns it does not name (Cc, sender name, Reply-To, files)."""
    return outbox.enqueue(session, **row, extra=extra)


def _notify_context(
    case: Case, mail: ParsedMail, desk: Desk, *, is_new_case: bool
) -> dict[str, Any]:
    text = strip_quoted_history(mail.text) or mail.text
    if len(text) > MAX_NOTIFY_TEXT:
        text = text[:MAX_NOTIFY_TEXT] + "\n[... truncated; the whole message is on the case]"
    words, due = _running_target(case, desk.policy)
    return {
        "case_ref": case.ref,
        "ref_token": desk.token.render(case.ref),
        "subject": case.subject,
        "customer_name": mail.from_.name if mail.from_ else "",
        "customer_address": case.customer_address,
        "plan": case.plan,
        "priority": case.priority,
        "priority_reason": case.priority_reason,
        "due_words": words,
        "due_local_team": _local_words(due, desk.calendar),
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


def _local_words(at: datetime | None, calendar: BusinessCalendar) -> str:
    return "-" if at is None else at.astimezone(calendar.tz).strftime("%a %d %b %Y %H:%M %Z")


def _bare(subject: str) -> str:
    return strip_subject_prefixes(subject) or subject


def _copied(case: Case, desk: Desk) -> list[str]:
    """Participants who get the relay too: never us, an agent, or the customer twice."""
    skip = {*desk.own_addresses, case.customer_address.lower()}
    return [
        p for p in case.participants if p.lower() not in skip and not is_agent(p, desk.classify)
    ]


def _customer_parent(session: Session, case: Case) -> Message | None:
    """The customer's latest message: what the relay answers, for the customer's threading."""
    senders = {case.customer_address.lower(), *(p.lower() for p in case.participants)}
    stmt = (
        select(Message)
        .where(
            Message.case_id == case.id,
            Message.direction == "in",
            Message.kind == "customer",
            Message.from_addr.in_(senders),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()
