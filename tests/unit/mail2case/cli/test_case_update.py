"""``cases update`` sits among the ``cases`` actions, registered without argparse internals."""

from __future__ import annotations

import pytest

from mail2case.cli.case_update import cases_update
from mail2case.cli.main import build_parser
from sla.clocks import Status
from sla.policy import Priority


def test_update_parses_as_a_cases_action() -> None:
    """``cases update REF`` reaches cases_update with the reference and the changes parsed."""
    args = build_parser().parse_args(
        ["cases", "update", "[#1042]", "--status", "closed", "--priority", "High", "--reason", "x"]
    )
    assert args.func is cases_update
    assert (args.cases_command, args.ref) == ("update", 1042)
    assert (args.status, args.priority, args.reason) == (Status.CLOSED, Priority.HIGH, "x")
    assert (args.actor, args.json) == (None, False)


def test_update_is_listed_with_the_other_cases_actions(capsys: pytest.CaptureFixture[str]) -> None:
    """``cases --help`` names update beside list and show."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cases", "--help"])
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert lines[lines.index("ACTION") + 1 :][:3] == [
        "list         the queue, in queue order",
        "show         one case with messages and events",
        "update       change status or priority",
    ]


def test_update_takes_config_after_its_name() -> None:
    """Like every command, ``cases update`` takes --config after its name."""
    args = build_parser().parse_args(["cases", "update", "7", "--config", "/etc/m.toml"])
    assert (args.ref, args.config) == (7, "/etc/m.toml")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cases", "update", "abc"], "not a case reference: 'abc'"),
        (["cases", "update", "1", "--priority", "urgent"], "argument --priority"),
    ],
)
def test_bad_arguments_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad reference or priority exits 2 with argparse's message naming it."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
