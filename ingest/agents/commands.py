"""Commands at the top of an agent's reply (``#status solved``) and the text left to relay."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "AgentReply",
    "Command",
    "CommandError",
    "Verb",
    "parse_agent_reply",
    "strip_quoted_history",
]


class Verb(StrEnum):
    """The commands an agent may give."""

    PRIORITY = "priority"
    STATUS = "status"
    INTERNAL = "internal"
    ASSIGN = "assign"
    CUSTOMER = "customer"


PRIORITIES = ("high", "medium", "low")
STATUSES = ("open", "pending", "solved", "closed")


@dataclass(frozen=True, slots=True)
class Command:
    """One command: ``#priority high customer confirmed data loss`` → value and reason."""

    verb: Verb
    value: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CommandError:
    """A command line that was not understood, and why (quoted back to the agent)."""

    line: str
    problem: str


@dataclass(frozen=True, slots=True)
class AgentReply:
    """An agent's mail taken apart: commands, the new text to relay, and any errors."""

    commands: tuple[Command, ...]
    text: str
    errors: tuple[CommandError, ...]

    def get(self, verb: Verb) -> Command | None:
        """The command ``verb``, if given."""
        return next((c for c in self.commands if c.verb is verb), None)

    @property
    def is_internal(self) -> bool:
        """True for ``#internal``: a note for agents, never relayed."""
        return self.get(Verb.INTERNAL) is not None


# A command is '#word' at the start of a line; '#1042 is fixed' or '# heading' is text.
_COMMAND = re.compile(r"#([A-Za-z][A-Za-z_-]*)(?:[ \t]+(.*))?")
_ADDRESS = re.compile(r"<?([^\s<>@]+@[^\s<>@]+\.[^\s<>@]+)>?")
_NAMED_ADDRESS = re.compile(r"[^<>]*<([^<>]+)>")
# Where quoted history starts: "On ... wrote:" (also wrapped onto a second line), Outlook's
# separator and header block, and the German, French and Spanish attribution lines.
_HISTORY_START = re.compile(
    r"^\s*(on\b.{0,300}\bwrote:|-{2,}\s*original message\s*-{2,}|"
    r"am\b.{0,300}\bschrieb.{0,80}:|le\b.{0,300}\ba écrit\s*:|el\b.{0,300}\bescribió\s*:|"
    r"_{10,}|from:.{1,300}\n\s*(sent|date):.*)\s*$",
    re.IGNORECASE,
)


def parse_agent_reply(body: str, *, allow_customer: bool = False) -> AgentReply:
    """Split ``body`` into the command block at its top and the text below it.

    The block is the leading lines that start with ``#word`` (blank lines between
    them allowed); it ends at the first other line. ``#customer`` is only valid as the
    very first line and only when ``allow_customer`` (a mail that opens a case).
    """
    lines = body.replace("\r\n", "\n").split("\n")
    commands: list[Command] = []
    errors: list[CommandError] = []
    index = _skip_blank(lines, 0)
    while index < len(lines) and (found := _COMMAND.fullmatch(lines[index].strip())):
        first = not commands and not errors
        parsed = _command(found.group(1).lower(), (found.group(2) or "").strip())
        if isinstance(parsed, Command):
            parsed = _check_place(parsed, first=first, allow_customer=allow_customer)
        _collect(parsed, lines[index].strip(), commands, errors)
        index = _skip_blank(lines, index + 1)
    text = strip_quoted_history("\n".join(lines[index:]))
    errors.extend(_stray_commands(text))
    return AgentReply(tuple(commands), text, tuple(errors))


def _stray_commands(text: str) -> list[CommandError]:
    """Valid command lines below the text: never relayed, never silently applied.

    An agent who writes ``#status pending`` under the answer meant a command; sent on,
    the customer would read it and the case would not change. Applying it instead
    would also apply a command-shaped line the agent meant as text. So the mail is
    held and the agent told (decided in docs/agents.md). Only lines that parse as a
    known command with valid arguments count: ``#1042`` or ``#Heading`` stay text.
    """
    found = []
    for line in text.split("\n"):
        match = _COMMAND.fullmatch(line.strip())
        if match is None:
            continue
        parsed = _command(match.group(1).lower(), (match.group(2) or "").strip())
        if isinstance(parsed, Command) and parsed.verb is not Verb.CUSTOMER:
            problem = "a command below your text: commands go at the top, before any text"
            found.append(CommandError(line.strip(), problem))
    return found


def _skip_blank(lines: list[str], index: int) -> int:
    while index < len(lines) and not lines[index].strip():
        index += 1
    return index


def _collect(
    parsed: Command | str, line: str, commands: list[Command], errors: list[CommandError]
) -> None:
    if isinstance(parsed, str):
        errors.append(CommandError(line, parsed))
    elif any(c.verb is parsed.verb for c in commands):
        errors.append(CommandError(line, f"#{parsed.verb} is given more than once"))
    else:
        commands.append(parsed)


def _check_place(command: Command, *, first: bool, allow_customer: bool) -> Command | str:
    if command.verb is not Verb.CUSTOMER:
        return command
    if not allow_customer:
        return "#customer only opens a new case (write to the plain support address)"
    return command if first else "#customer must be the first line"


def _command(word: str, rest: str) -> Command | str:
    """One command line parsed, or the problem with it in words."""
    try:
        verb = Verb(word)
    except ValueError:
        known = ", ".join(f"#{v}" for v in Verb)
        return f"unknown command #{word} (known: {known})"
    if verb is Verb.INTERNAL:
        return Command(verb) if not rest else "#internal takes no arguments"
    value, _, reason = rest.partition(" ")
    if verb is Verb.PRIORITY:
        return _choice(verb, value.lower(), PRIORITIES, reason.strip())
    if verb is Verb.STATUS:
        if reason.strip():
            return f"#{verb} takes one argument (got {rest!r})"
        return _choice(verb, value.lower(), STATUSES, "")
    return _address_command(verb, rest)


def _address_command(verb: Verb, rest: str) -> Command | str:
    """``#assign bob@team.example`` or, as mail clients paste it, ``Bob <bob@team.example>``."""
    named = _NAMED_ADDRESS.fullmatch(rest)
    address = _ADDRESS.fullmatch(named.group(1) if named else rest)
    if address is None:
        return f"#{verb} needs one email address (got {rest!r})"
    return Command(verb, address.group(1).lower())


def _choice(verb: Verb, value: str, allowed: tuple[str, ...], reason: str) -> Command | str:
    if value not in allowed:
        return f"#{verb} must be one of {'|'.join(allowed)} (got {value!r})"
    return Command(verb, value, reason)


def strip_quoted_history(text: str) -> str:
    """``text`` up to the quoted history, without the trailing '>' block.

    Unlike :func:`ingest.priority.text.new_text` this keeps closing phrases and the
    signature: the customer should read who answered and how to reach them. Inline
    quotes above the history are kept too, since an inline answer needs its question.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    for index, line in enumerate(lines):
        after = lines[index + 1] if index + 1 < len(lines) else ""
        # Clients wrap a long attribution line; Outlook's header block spans two lines.
        candidates = (line, f"{line} {after.strip()}", f"{line}\n{after}")
        if any(_HISTORY_START.match(c) for c in candidates):
            lines = lines[:index]
            break
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        lines.pop()
    # "-- " keeps its space: RFC 3676 4.3 makes it the signature separator clients fold.
    return "\n".join(line if line == "-- " else line.rstrip() for line in lines).strip("\n")
