"""Agents' mail on a case: who has authority, what they asked for, and what goes to the customer.

Called by the process stage inside its transaction, in two steps around storing the
message: :func:`judge` decides the mail's role (or None for ordinary customer mail),
the process stage stores the message as :meth:`Role.stored_as` says (opening a case
for ``#customer``), then :func:`act` applies commands, moves SLA clocks and queues mail.

How messages are stored:

- an agent's public reply: ``direction="out"``, ``kind="agent"``, the Message-ID of the
  relay we send (so the customer's answer to the relay threads), text as relayed;
- ``#internal``: ``direction="in"``, ``kind="note"`` (never relayed, meets no clock);
- commands not understood, or relays over the hourly limit: ``kind="rejected"``;
- an agent's auto-responder: ``kind="auto_reply"``, never answered;
- no authority (no valid signature for the case, a non-agent sender, or a failed
  DKIM/DMARC check when required): ``kind="customer"`` with a ``suspicious`` event; no
  command is applied, nothing is relayed, no clock moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ingest.agents.authentication import authentication_verdict
from ingest.agents.commands import (
    AgentReply,
    CommandError,
    Verb,
    parse_agent_reply,
)
from ingest.agents.outbox import (
    Desk,
    Relay,
    agent_key,
    is_agent,
    new_message_id,
    queue_command_error,
    queue_relay,
    sent_within_hour,
)
from ingest.agents.reply_address import claimed_ref, parse_reply_address
from ingest.triage.classify import Kind
from sla import tracking
from sla.clocks import Status
from sla.policy import Priority
from storage import cases

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from sqlalchemy.orm import Session

    from ingest.mime.parsed import ParsedMail
    from ingest.triage.classify import Classification
    from storage.models import Case

__all__ = ["Action", "Desk", "Role", "StoredAs", "act", "judge"]


class Action(StrEnum):
    """What an agent-related mail does."""

    REPLY = "reply"
    NOTE = "note"
    ON_BEHALF = "on_behalf"
    REJECTED = "rejected"
    RATE_LIMITED = "rate_limited"
    AUTO_REPLY = "auto_reply"
    SUSPICIOUS = "suspicious"
    REFUSED = "refused"


@dataclass(frozen=True)
class StoredAs:
    """How the process stage stores the message."""

    direction: str
    kind: str
    message_id: str | None
    text: str


@dataclass(frozen=True)
class Role:
    """The decision about one mail, with what :func:`act` needs to carry it out."""

    action: Action
    case: Case | None
    reason: str
    sender: str
    reply: AgentReply | None = None
    customer: str | None = None
    relay_message_id: str | None = None
    may_send_error: bool = True

    def stored_as(self, mail: ParsedMail) -> StoredAs:
        """Direction, kind, Message-ID and text of the stored message (module docstring)."""
        new_text = self.reply.text if self.reply is not None else mail.text
        if self.action in {Action.REPLY, Action.ON_BEHALF}:
            return StoredAs("out", "agent", self.relay_message_id, new_text)
        if self.action is Action.NOTE:
            return StoredAs("in", "note", mail.message_id, new_text)
        kind = {Action.AUTO_REPLY: "auto_reply", Action.SUSPICIOUS: "customer"}.get(
            self.action, "rejected"
        )
        return StoredAs("in", kind, mail.message_id, mail.text)


def judge(  # noqa: PLR0917 - the process stage's unit of work, passed through
    session: Session,
    case: Case | None,
    mail: ParsedMail,
    verdict: Classification,
    rcpt_to: Iterable[str],
    desk: Desk,
    now: datetime,
) -> Role | None:
    """Decide what ``mail`` is in the agents' workflow; None for ordinary customer mail.

    ``case`` is what threading found; a valid signed reply address overrides it.
    """
    sender = mail.from_.key if mail.from_ else ""
    addresses = [*rcpt_to, *(a.addr for a in (*mail.to, *mail.cc))]
    signed = _signed_ref(addresses, desk)
    if signed is not None:
        return _signed_role(session, signed, mail, verdict, sender, desk, now)
    claimed = next(
        (r for a in addresses if (r := claimed_ref(a, desk.own_addresses)) is not None), None
    )
    claims_agent = verdict.kind is Kind.AGENT
    if claimed is not None:
        return _suspicious(case, sender, f"reply address not validly signed for case {claimed}")
    if claims_agent and case is not None:
        return _suspicious(case, sender, "agent From without a signed reply address")
    if claims_agent:
        return _maybe_on_behalf(session, mail, sender, desk, now)
    return None


def act(  # noqa: PLR0917 - the process stage's unit of work, passed through
    session: Session,
    role: Role,
    case: Case | None,
    message_id: int | None,
    mail: ParsedMail,
    desk: Desk,
    now: datetime,
) -> dict[str, Any]:
    """Carry out ``role`` once the message is stored on ``case``; returns log fields.

    ``case`` is ``role.case``, or for ``#customer`` the case the process stage opened;
    ``message_id`` is the row id of the message stored on it.
    """
    fields: dict[str, Any] = {"agent_action": role.action.value, "agent_reason": role.reason}
    if role.action is Action.REJECTED:
        fields["error_mail"] = _reject(session, role, mail, desk, now)
    elif case is not None and role.action in {Action.REPLY, Action.NOTE, Action.ON_BEHALF}:
        fields["relayed"] = _apply(session, role, case, mail, desk, now)
    elif case is not None:
        cases.add_event(
            session,
            case,
            role.action.value,
            now,
            actor=role.sender,
            detail=role.reason,
            data={"message_id": mail.message_id, "stored_as": message_id},
        )
    return fields


def _signed_ref(addresses: Iterable[str], desk: Desk) -> int | None:
    secret = desk.agents.reply_secret
    return next(
        (
            r
            for a in addresses
            if (r := parse_reply_address(a, desk.own_addresses, secret)) is not None
        ),
        None,
    )


def _signed_role(  # noqa: PLR0917 - private; one unit of work's fields
    session: Session,
    ref: int,
    mail: ParsedMail,
    verdict: Classification,
    sender: str,
    desk: Desk,
    now: datetime,
) -> Role:
    case = cases.case_by_ref(session, ref)
    if case is None:
        return Role(Action.REFUSED, None, f"signed reply address for unknown case {ref}", sender)
    if not is_agent(sender, desk.classify):
        return _suspicious(case, sender, "valid reply-address signature from a non-agent")
    if verdict.is_automatic:
        # RFC 3834 section 2: never answer an automatic reply, or two robots talk for ever.
        return Role(Action.AUTO_REPLY, case, f"{verdict.kind}: {verdict.reason}", sender)
    unauthenticated = _authentication_problem(mail, desk)
    if unauthenticated is not None:
        return _suspicious(case, sender, unauthenticated)
    reply = _with_agent_checks(parse_agent_reply(mail.text), desk)
    return _reply_role(session, case, reply, sender, desk, now)


def _reply_role(  # noqa: PLR0917 - private; one unit of work's fields
    session: Session, case: Case, reply: AgentReply, sender: str, desk: Desk, now: datetime
) -> Role:
    if reply.errors:
        return _rejected(session, case, reply, sender, desk, now)
    if reply.is_internal:
        return Role(Action.NOTE, case, "internal note", sender, reply)
    if not reply.text.strip():
        # "#status solved" alone is bookkeeping, not an answer the customer should get.
        return Role(Action.NOTE, case, "commands only, nothing to relay", sender, reply)
    limit = desk.agents.max_relays_per_hour
    if sent_within_hour(session, f"relay:{case.ref}:{agent_key(sender)}:", now) >= limit:
        reason = f"more than {limit} relays by this agent on this case in an hour"
        return Role(Action.RATE_LIMITED, case, reason, sender, reply)
    relay_id = new_message_id(case.ref, desk.message_id_domain)
    return Role(Action.REPLY, case, "signed agent reply", sender, reply, relay_message_id=relay_id)


def _maybe_on_behalf(
    session: Session, mail: ParsedMail, sender: str, desk: Desk, now: datetime
) -> Role | None:
    """An agent writing to the plain support address: ``#customer`` opens a case."""
    reply = _with_agent_checks(parse_agent_reply(mail.text, allow_customer=True), desk)
    customer = reply.get(Verb.CUSTOMER)
    if customer is not None and not reply.text.strip() and not reply.is_internal:
        problem = "#customer needs a message for the customer below the commands"
        line = f"#customer {customer.value}"
        reply = AgentReply(reply.commands, reply.text, (CommandError(line, problem),))
    if customer is None and not reply.errors:
        return None  # an agent's own question to support: an ordinary new case
    unauthenticated = _authentication_problem(mail, desk)
    if unauthenticated is not None:
        return Role(Action.REFUSED, None, unauthenticated, sender)
    if reply.errors or customer is None:
        return _rejected(session, None, reply, sender, desk, now)
    relay_id = new_message_id(None, desk.message_id_domain)
    return Role(
        Action.ON_BEHALF,
        None,
        f"opened by an agent for {customer.value}",
        sender,
        reply,
        customer=customer.value,
        relay_message_id=relay_id,
    )


def _rejected(  # noqa: PLR0917 - private; one unit of work's fields
    session: Session,
    case: Case | None,
    reply: AgentReply,
    sender: str,
    desk: Desk,
    now: datetime,
) -> Role:
    ref = "new" if case is None else str(case.ref)
    sent = sent_within_hour(session, f"command_error:{ref}:{agent_key(sender)}:", now)
    problems = "; ".join(e.problem for e in reply.errors)
    may_send = sent < desk.agents.max_error_mails_per_hour
    return Role(Action.REJECTED, case, problems, sender, reply, may_send_error=may_send)


def _suspicious(case: Case | None, sender: str, reason: str) -> Role:
    return Role(Action.SUSPICIOUS if case is not None else Action.REFUSED, case, reason, sender)


def _with_agent_checks(reply: AgentReply, desk: Desk) -> AgentReply:
    """Commands that parse but name the wrong people: assign to a non-agent, and so on."""
    extra: list[CommandError] = []
    assign = reply.get(Verb.ASSIGN)
    if assign is not None and not is_agent(assign.value, desk.classify):
        extra.append(CommandError(f"#assign {assign.value}", f"{assign.value} is not an agent"))
    customer = reply.get(Verb.CUSTOMER)
    if customer is not None and (
        is_agent(customer.value, desk.classify) or customer.value in desk.own_addresses
    ):
        line = f"#customer {customer.value}"
        extra.append(CommandError(line, f"{customer.value} is an agent or our own address"))
    if not extra:
        return reply
    return AgentReply(reply.commands, reply.text, (*reply.errors, *extra))


def _authentication_problem(mail: ParsedMail, desk: Desk) -> str | None:
    settings = desk.agents
    if not settings.require_authentication:
        return None
    domain = mail.from_.domain if mail.from_ else ""
    verdict = authentication_verdict(
        mail.header_all("Authentication-Results"), settings.trusted_authserv_ids, domain
    )
    return None if verdict.is_authenticated else f"not authenticated: {verdict.reason}"


def _reject(session: Session, role: Role, mail: ParsedMail, desk: Desk, now: datetime) -> bool:
    errors = role.reply.errors if role.reply is not None else ()
    if role.case is not None:
        cases.add_event(
            session,
            role.case,
            "commands_rejected",
            now,
            actor=role.sender,
            detail=role.reason,
            data={"errors": [{"line": e.line, "problem": e.problem} for e in errors]},
        )
    if not role.may_send_error:
        return False
    return queue_command_error(session, role.case, mail, role.sender, errors, desk, now)


def _apply(  # noqa: PLR0917 - private; one unit of work's fields
    session: Session, role: Role, case: Case, mail: ParsedMail, desk: Desk, now: datetime
) -> bool:
    """Commands in the order that keeps the clocks right; then the relay, unless a note."""
    reply = role.reply
    assert reply is not None  # noqa: S101 - judge() gives every such role its parsed reply
    if role.action is Action.ON_BEHALF:
        case.participants = [
            p for p in case.participants if p != role.customer and not is_agent(p, desk.classify)
        ]
    _recategorize(session, case, reply, role.sender, desk, now)
    _assign(session, case, reply, role.sender, now)
    relayed = False
    # After #priority, so that the update clock the reply starts runs on the new target;
    # before #status, so that "solved" stops the clock the reply started.
    if role.action is not Action.NOTE and not reply.is_internal:
        tracking.record_agent_reply(session, case, now, context=desk.sla, actor=role.sender)
        relayed = queue_relay(session, _relay(role, case, mail), desk, now)
    status = reply.get(Verb.STATUS)
    if status is not None:
        reason = f"#status by {role.sender}"
        tracking.change_status(
            session, case, Status(status.value), now, role.sender, reason, context=desk.sla
        )
    case.updated_at = now
    return relayed


def _recategorize(  # noqa: PLR0917 - private; one unit of work's fields
    session: Session, case: Case, reply: AgentReply, actor: str, desk: Desk, now: datetime
) -> None:
    command = reply.get(Verb.PRIORITY)
    if command is None:
        return
    reason = command.reason or f"recategorized by {actor}"
    tracking.change_priority(
        session, case, Priority(command.value), now, actor, reason, context=desk.sla
    )


def _assign(session: Session, case: Case, reply: AgentReply, actor: str, now: datetime) -> None:
    command = reply.get(Verb.ASSIGN)
    if command is None or command.value == case.owner:
        return
    cases.add_event(
        session,
        case,
        "owner_changed",
        now,
        actor=actor,
        detail=f"{case.owner or 'nobody'} -> {command.value}",
        data={"from": case.owner, "to": command.value},
    )
    case.owner = command.value


def _relay(role: Role, case: Case, mail: ParsedMail) -> Relay:
    name = (mail.from_.name if mail.from_ else "") or role.sender.partition("@")[0]
    files = tuple(
        {"sha256": a.sha256, "filename": a.filename, "content_type": a.content_type}
        for a in mail.attachments
        # Inline parts are logos and signature images: without the agent's HTML they
        # would arrive as puzzling attachments.
        if not a.is_inline
    )
    return Relay(
        case=case,
        agent_address=role.sender,
        agent_name=name,
        text=role.reply.text if role.reply is not None else "",
        message_id=role.relay_message_id or "",
        content_key=mail.content_key,
        attachments=files,
    )
