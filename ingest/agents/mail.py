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
  DKIM/DMARC check when required): ``kind="customer"`` with a ``suspicious`` event and
  no Message-ID (nothing threads onto it); no command is applied, nothing is relayed,
  no clock moves.
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
    Turn,
    agent_key,
    is_agent,
    queue_command_error,
    queue_relay,
    relays_by_agent_within_hour,
    sent_within_hour,
)
from ingest.agents.reply_address import claimed_ref, parse_reply_address
from ingest.triage.classify import Kind
from sla import tracking
from sla.clocks import Status
from sla.policy import Priority
from storage import cases, outbox

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ingest.mime.parsed import ParsedMail
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
        if self.action is Action.SUSPICIOUS:
            # Kept for the agents to read, but without its Message-ID: a reply to a mail
            # planted under a forged agent From must not thread by it (the raw mail keeps it).
            return StoredAs("in", "customer", None, mail.text)
        kind = "auto_reply" if self.action is Action.AUTO_REPLY else "rejected"
        return StoredAs("in", kind, mail.message_id, mail.text)


def judge(turn: Turn, case: Case | None) -> Role | None:
    """Decide what the turn's mail is in the agents' workflow; None for customer mail.

    ``case`` is what threading found; a valid signed reply address overrides it.
    """
    mail, desk = turn.mail, turn.desk
    sender = mail.from_.key if mail.from_ else ""
    addresses = [*turn.work.row.rcpt_to, *(a.addr for a in (*mail.to, *mail.cc))]
    signed = _signed_ref(addresses, desk)
    if signed is not None:
        return _signed_role(turn, signed, sender)
    claimed = next(
        (r for a in addresses if (r := claimed_ref(a, desk.own_addresses)) is not None), None
    )
    claims_agent = turn.work.verdict.kind is Kind.AGENT
    if claimed is not None:
        return _suspicious(case, sender, f"reply address not validly signed for case {claimed}")
    if claims_agent and case is not None:
        return _suspicious(case, sender, "agent From without a signed reply address")
    if claims_agent:
        return _maybe_on_behalf(turn, sender)
    return None


def act(turn: Turn, role: Role, case: Case | None, message_id: int | None) -> dict[str, Any]:
    """Carry out ``role`` once the message is stored on ``case``; returns log fields.

    ``case`` is ``role.case``, or for ``#customer`` the case the process stage opened;
    ``message_id`` is the row id of the message stored on it.
    """
    fields: dict[str, Any] = {"agent_action": role.action.value, "agent_reason": role.reason}
    if role.action is Action.REJECTED:
        fields["error_mail"] = _reject(turn, role)
    elif case is not None and role.action in {Action.REPLY, Action.NOTE, Action.ON_BEHALF}:
        fields["relayed"] = _apply(turn, role, case)
    elif case is not None:
        cases.add_event(
            turn.session,
            case,
            role.action.value,
            turn.now,
            actor=role.sender,
            detail=role.reason,
            data={"message_id": turn.mail.message_id, "stored_as": message_id},
        )
    return fields


def _signed_ref(addresses: Iterable[str], desk: Desk) -> int | None:
    """The case a validly signed reply address names: the current secret, or a previous one.

    Reply addresses do not expire: alone they grant nothing (the agent's From, and DKIM
    where required, must come with them), and an old notification must still work on an
    open case. A secret is rotated by moving it to ``previous_reply_secrets``: new mail
    is signed with the new one, addresses already sent keep working until it is dropped.
    """
    secrets = [s for s in (desk.agents.reply_secret, *desk.agents.previous_reply_secrets) if s]
    for address in addresses:
        for secret in secrets:
            ref = parse_reply_address(address, desk.own_addresses, secret)
            if ref is not None:
                return ref
    return None


def _signed_role(turn: Turn, ref: int, sender: str) -> Role:
    desk, verdict = turn.desk, turn.work.verdict
    case = cases.case_by_ref(turn.session, ref)
    if case is None:
        return Role(Action.REFUSED, None, f"signed reply address for unknown case {ref}", sender)
    if not is_agent(sender, desk.classify):
        return _suspicious(case, sender, "valid reply-address signature from a non-agent")
    if verdict.is_automatic:
        # RFC 3834 section 2: never answer an automatic reply, or two robots talk for ever.
        return Role(Action.AUTO_REPLY, case, f"{verdict.kind}: {verdict.reason}", sender)
    unauthenticated = _authentication_problem(turn.mail, desk)
    if unauthenticated is not None:
        return _suspicious(case, sender, unauthenticated)
    reply = _with_agent_checks(parse_agent_reply(turn.mail.text), desk)
    return _reply_role(turn, case, reply, sender)


def _reply_role(turn: Turn, case: Case, reply: AgentReply, sender: str) -> Role:
    if reply.errors:
        return _rejected(turn, case, reply, sender)
    if reply.is_internal:
        return Role(Action.NOTE, case, "internal note", sender, reply)
    if not reply.text.strip():
        # "#status solved" alone is bookkeeping, not an answer the customer should get.
        return Role(Action.NOTE, case, "commands only, nothing to relay", sender, reply)
    limit = turn.desk.agents.max_relays_per_hour
    if sent_within_hour(turn, f"relay:{case.ref}:{agent_key(sender)}:") >= limit:
        reason = f"more than {limit} relays by this agent on this case in an hour"
        return Role(Action.RATE_LIMITED, case, reason, sender, reply)
    over = _agent_relay_limit(turn, sender)
    if over is not None:
        return Role(Action.RATE_LIMITED, case, over, sender, reply)
    relay_id = outbox.new_message_id(f"case{case.ref}", turn.desk.message_id_domain)
    return Role(Action.REPLY, case, "signed agent reply", sender, reply, relay_message_id=relay_id)


def _maybe_on_behalf(turn: Turn, sender: str) -> Role | None:
    """An agent writing to the plain support address: ``#customer`` opens a case."""
    mail, desk = turn.mail, turn.desk
    reply = _with_agent_checks(parse_agent_reply(mail.text, allow_customer=True), desk)
    customer = reply.get(Verb.CUSTOMER)
    if customer is not None and not reply.text.strip() and not reply.is_internal:
        problem = "#customer needs a message for the customer below the commands"
        line = f"#customer {customer.value}"
        reply = AgentReply(reply.commands, reply.text, (CommandError(line, problem),))
    if customer is None and not reply.errors:
        return None  # an agent's own question to support: an ordinary new case
    refusal = _on_behalf_problem(turn, sender) if customer is not None else None
    if customer is not None and refusal is not None and not reply.errors:
        line = f"#customer {customer.value}"
        reply = AgentReply(reply.commands, reply.text, (CommandError(line, refusal),))
    if reply.errors or customer is None:
        return _rejected(turn, None, reply, sender)
    relay_id = outbox.new_message_id("mail2case", desk.message_id_domain)
    return Role(
        Action.ON_BEHALF,
        None,
        f"opened by an agent for {customer.value}",
        sender,
        reply,
        customer=customer.value,
        relay_message_id=relay_id,
    )


def _on_behalf_problem(turn: Turn, sender: str) -> str | None:
    """Why this mail may not open a case in a customer's name, or None.

    ``#customer`` sends mail to any address in the support address's name, so the From
    header (a claim anyone can write) is not enough: the agent's domain must pass DKIM
    or DMARC at a border MTA we trust. Without that set-up, #customer is refused.
    """
    mail, desk = turn.mail, turn.desk
    if not desk.agents.require_authentication:
        return (
            "#customer is accepted only from mail authenticated by DKIM or DMARC "
            "([agents] require_authentication and trusted_authserv_ids)"
        )
    unauthenticated = _authentication_problem(mail, desk)
    if unauthenticated is not None:
        return f"#customer refused: {unauthenticated}"
    ours = {a.lower() for a in desk.own_addresses}
    reached = {a.key for a in (*mail.to, *mail.cc) if a.key not in ours} - {sender}
    limit = desk.agents.max_relay_recipients
    if len(reached) + 1 > limit:
        return (
            f"a mail in a customer's name reaches at most {limit} people (got {len(reached) + 1})"
        )
    return _agent_relay_limit(turn, sender)


def _agent_relay_limit(turn: Turn, sender: str) -> str | None:
    """Past the relays one agent may send in an hour over all cases: why, else None."""
    limit = turn.desk.agents.max_relays_per_agent_per_hour
    if relays_by_agent_within_hour(turn, sender) >= limit:
        return f"more than {limit} relays by this agent in an hour (all cases)"
    return None


def _rejected(turn: Turn, case: Case | None, reply: AgentReply, sender: str) -> Role:
    ref = "new" if case is None else str(case.ref)
    sent = sent_within_hour(turn, f"command_error:{ref}:{agent_key(sender)}:")
    problems = "; ".join(e.problem for e in reply.errors)
    may_send = sent < turn.desk.agents.max_error_mails_per_hour
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


def _reject(turn: Turn, role: Role) -> bool:
    errors = role.reply.errors if role.reply is not None else ()
    if role.case is not None:
        cases.add_event(
            turn.session,
            role.case,
            "commands_rejected",
            turn.now,
            actor=role.sender,
            detail=role.reason,
            data={"errors": [{"line": e.line, "problem": e.problem} for e in errors]},
        )
    if not role.may_send_error:
        return False
    return queue_command_error(turn, role.case, role.sender, errors)


def _apply(turn: Turn, role: Role, case: Case) -> bool:
    """Commands in the order that keeps the clocks right; then the relay, unless a note."""
    session, desk, now = turn.session, turn.desk, turn.now
    reply = role.reply
    assert reply is not None  # noqa: S101 - judge() gives every such role its parsed reply
    if role.action is Action.ON_BEHALF:
        case.participants = [
            p for p in case.participants if p != role.customer and not is_agent(p, desk.classify)
        ]
    _recategorize(turn, case, reply, role.sender)
    _assign(turn, case, reply, role.sender)
    relayed = False
    # After #priority, so that the update clock the reply starts runs on the new target;
    # before #status, so that "solved" stops the clock the reply started.
    if role.action is not Action.NOTE and not reply.is_internal:
        tracking.record_agent_reply(session, case, now, context=desk.sla, actor=role.sender)
        relayed = queue_relay(turn, _relay(role, case, turn.mail, desk))
    status = reply.get(Verb.STATUS)
    if status is not None:
        tracking.change_status(
            session,
            case,
            Status(status.value),
            now,
            actor=role.sender,
            reason=f"#status by {role.sender}",
            context=desk.sla,
        )
    case.updated_at = now
    return relayed


def _recategorize(turn: Turn, case: Case, reply: AgentReply, actor: str) -> None:
    command = reply.get(Verb.PRIORITY)
    if command is None:
        return
    tracking.change_priority(
        turn.session,
        case,
        Priority(command.value),
        turn.now,
        actor=actor,
        reason=command.reason or f"recategorized by {actor}",
        context=turn.desk.sla,
    )


def _assign(turn: Turn, case: Case, reply: AgentReply, actor: str) -> None:
    command = reply.get(Verb.ASSIGN)
    if command is not None:
        cases.assign_owner(turn.session, case, command.value, turn.now, actor=actor)


def _relay(role: Role, case: Case, mail: ParsedMail, desk: Desk) -> Relay:
    name = (
        (mail.from_.name if mail.from_ else "")
        or desk.agents.name_of(role.sender)
        or role.sender.partition("@")[0]
    )
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
