"""Commands at the top of an agent's reply and the text that is relayed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.agents.commands import Command, Verb, parse_agent_reply, strip_quoted_history


@pytest.mark.parametrize(
    ("body", "commands"),
    [
        ("#priority high\nText", [Command(Verb.PRIORITY, "high")]),
        (
            "#priority LOW customer says it is a how-to\nText",
            [Command(Verb.PRIORITY, "low", "customer says it is a how-to")],
        ),
        ("  #status solved  \nText", [Command(Verb.STATUS, "solved")]),
        ("#internal\nFor us only", [Command(Verb.INTERNAL)]),
        ("#assign <Bob@Team.example>\nyours", [Command(Verb.ASSIGN, "bob@team.example")]),
        (
            "\n#status pending\n\n#priority medium\n\nHi",
            [Command(Verb.STATUS, "pending"), Command(Verb.PRIORITY, "medium")],
        ),
        ("#1042 is fixed now", []),
        ("# Heading\ntext", []),
    ],
)
def test_commands_table(body: str, commands: list[Command]) -> None:
    """Commands are read from the top block only; '#1042' and '# heading' are text."""
    reply = parse_agent_reply(body)
    assert list(reply.commands) == commands
    assert reply.errors == ()


@pytest.mark.parametrize(
    "body",
    [
        "Hi Carol,\n\nfixed now.\n#status solved",
        "Hi\n  #priority low how-to question\nthanks",
        "#assign bob@team.example\nHello\n#internal",
    ],
)
def test_a_valid_command_below_the_text_holds_the_mail(body: str) -> None:
    """A command line under the answer is an error: nothing applied, nothing relayed."""
    reply = parse_agent_reply(body)
    assert [e.problem for e in reply.errors] == [
        "a command below your text: commands go at the top, before any text"
    ]


@pytest.mark.parametrize(
    "body",
    [
        "Hi\n#1042 is fixed now",
        "Hi\n#Heading of mine",
        "Hi\n#status whenever",  # not a valid command: text, as any other line
        "Hi\n\nOn Mon, Carol wrote:\n> #status solved",
    ],
)
def test_command_shaped_text_below_stays_text(body: str) -> None:
    """Only a valid command holds the mail; quoted history and other '#' lines are text."""
    assert parse_agent_reply(body).errors == ()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("#prio high", "unknown command #prio"),
        ("#priority urgent", "#priority must be one of high|medium|low"),
        ("#priority", "#priority must be one of"),
        ("#status done", "#status must be one of open|pending|solved|closed"),
        ("#status solved now", "#status takes one argument"),
        ("#internal please", "#internal takes no arguments"),
        ("#assign bob", "#assign needs one email address"),
        ("#assign", "#assign needs one email address"),
        ("#assign a@b.example c@d.example", "#assign needs one email address"),
        ("#status open\n#status solved", "#status is given more than once"),
        ("#customer bob@customer.example", "#customer only opens a new case"),
    ],
)
def test_errors_table(body: str, problem: str) -> None:
    """Each malformed or unknown command is reported with the line and the problem."""
    reply = parse_agent_reply(body + "\nText")
    assert len(reply.errors) == 1
    assert problem in reply.errors[0].problem
    assert reply.errors[0].line == body.splitlines()[-1].strip()


def test_customer_first_line_opens_case() -> None:
    """#customer is accepted as the first line of a mail that opens a case."""
    reply = parse_agent_reply(
        "#customer Bob <bob@customer.example>\nHello Bob", allow_customer=True
    )
    assert reply.errors == ()
    assert reply.get(Verb.CUSTOMER) == Command(Verb.CUSTOMER, "bob@customer.example")
    assert reply.text == "Hello Bob"


def test_customer_not_first_is_an_error() -> None:
    """#customer after another command is refused even when a case may be opened."""
    reply = parse_agent_reply(
        "#priority high\n#customer bob@customer.example\nx", allow_customer=True
    )
    assert [e.problem for e in reply.errors] == ["#customer must be the first line"]


def test_internal_flag() -> None:
    """#internal marks the reply as a note."""
    assert parse_agent_reply("#internal\nnote").is_internal
    assert not parse_agent_reply("reply").is_internal


def test_text_without_commands_and_history() -> None:
    """The relayed text has neither the command lines nor the quoted history."""
    body = (
        "#status solved\n\nHello Alice,\n\nThe export works again.\n\nRegards,\nBob\n-- \n"
        "Bob, Example Support\n\n"
        "On Mon, 2 Mar 2026 at 10:00, Alice <alice@customer.example> wrote:\n"
        "> Export is broken\n> please help\n"
    )
    reply = parse_agent_reply(body)
    assert reply.text == (
        "Hello Alice,\n\nThe export works again.\n\nRegards,\nBob\n-- \nBob, Example Support"
    )


@pytest.mark.parametrize(
    "history",
    [
        "On Mon, 2 Mar 2026 at 10:00, Alice Example <\nalice@customer.example> wrote:\n> old",
        "-----Original Message-----\nFrom: Alice\nold",
        "From: Alice <alice@customer.example>\nSent: Monday, March 2, 2026 10:00\nTo: x\nold",
        "Am 02.03.2026 um 10:00 schrieb Alice <alice@customer.example>:\n> alt",
        "Le lun. 2 mars 2026 à 10:00, Alice a écrit :\n> vieux",
        "________________________________\nFrom: Alice\nold",
        "> old\n> older",
    ],
)
def test_history_styles_are_cut(history: str) -> None:
    """Gmail, Outlook, Apple Mail and localized attribution lines all end the new text."""
    assert strip_quoted_history(f"New answer.\n\n{history}\n") == "New answer."


def test_inline_quotes_above_history_are_kept() -> None:
    """An inline answer keeps the question it answers."""
    assert strip_quoted_history("> Does it work?\nYes.\n") == "> Does it work?\nYes."


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300))
def test_parser_is_total(body: str) -> None:
    """Any text parses into commands, text and errors without raising."""
    reply = parse_agent_reply(body, allow_customer=True)
    assert len(reply.text) <= len(body)
