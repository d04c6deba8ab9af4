"""The guides name only commands and config keys that exist, and link only pages that do."""

from __future__ import annotations

import contextlib
import io
import re
import tomllib
from typing import TYPE_CHECKING

import pytest

from mail2case.cli.main import build_parser
from mail2case.config.reader import ConfigError
from mail2case.config.settings import config_from_mapping
from tests.support.services import REPO

if TYPE_CHECKING:
    from pathlib import Path

GUIDES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
SPAN = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"(?:^|[\s/])mail2case((?:[ \t]+[^\s|;&)`\"']+)+)", re.MULTILINE)
SECTION_KEY = re.compile(r"^\[\[?([a-z_]+)\]?\]\s+([a-z_]+)\b")
# "sudo -u mail2case …", "install -g mail2case …": the service user, not the command.
USER_FLAG = re.compile(r"(-[ugo]|--group|adduser .*)\s+$")
ARRAY_TABLES = frozenset({"customers", "imap"})


def code_of(path: Path) -> list[tuple[str, str]]:
    """Every fenced block (with its language) and inline code span of a guide."""
    text = path.read_text(encoding="utf-8")
    blocks = [(lang, body) for lang, body in FENCE.findall(text)]
    prose = FENCE.sub("", text)
    return blocks + [("", span) for span in SPAN.findall(prose)]


def command_words(tail: str) -> list[str]:
    """The words after ``mail2case`` up to the first option, ``--config X`` skipped."""
    words = tail.split()
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word == "--config":
            skip = True
            continue
        if word.startswith(("-", "[")) or len(out) == 2:
            break
        out.append(word)
    return out


def commands_named() -> set[tuple[str, ...]]:
    """Every ``mail2case WORD [WORD]`` that a guide's code names."""
    found: set[tuple[str, ...]] = set()
    for guide in GUIDES:
        for _, code in code_of(guide):
            for match in COMMAND.finditer(code):
                line_start = code.rfind("\n", 0, match.start()) + 1
                if USER_FLAG.search(code[line_start : match.start() + 1]):
                    continue
                words = command_words(match.group(1))
                if words and re.fullmatch(r"[a-z][a-z-]*", words[0]):
                    found.add(tuple(words))
    return found


def parses_with_help(words: tuple[str, ...]) -> bool:
    """Whether ``mail2case WORDS --help`` is a valid command line (argparse exits 0)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            build_parser().parse_args([*words, "--help"])
        except SystemExit as exc:
            return exc.code == 0
    return False


@pytest.mark.parametrize("words", sorted(commands_named()), ids=" ".join)
def test_every_command_named_exists(words: tuple[str, ...]) -> None:
    """A command line in a guide is one the CLI accepts."""
    assert parses_with_help(words), f"mail2case {' '.join(words)}"


def test_the_guides_name_the_main_commands() -> None:
    """The scan finds commands at all (a broken pattern would pass every case above)."""
    named = {w[0] for w in commands_named()}
    assert {"run", "ingest", "cases", "sla", "check-config", "db"} <= named


def keys_named() -> set[tuple[str, str]]:
    """Every ``[section] key`` in a guide's code, and every key of its TOML blocks."""
    found: set[tuple[str, str]] = set()
    for guide in GUIDES:
        for lang, code in code_of(guide):
            if lang == "toml":
                found |= toml_keys(code)
            elif not lang and "\n" not in code:  # an inline span: "[agents] team_address"
                found |= set(SECTION_KEY.findall(code))
    return found


def toml_keys(block: str) -> set[tuple[str, str]]:
    """The (section, key) pairs of a TOML example block."""
    data = tomllib.loads(block)
    pairs: set[tuple[str, str]] = set()
    for section, table in data.items():
        for row in table if isinstance(table, list) else [table]:
            pairs |= {(section, key) for key in row}
    return pairs


def is_known_key(section: str, key: str) -> bool:
    """Whether the config reader knows ``[section] key`` (any value problem is fine)."""
    value: dict[str, object] = {key: None}
    try:
        config_from_mapping({section: [value] if section in ARRAY_TABLES else value})
    except ConfigError as exc:
        unknown = {f"{section}: unknown key", f"{section}.{key}: unknown key"}
        unknown |= {f"{section}[0].{key}: unknown key"}
        return not any(p in unknown for p in exc.problems)
    return True


@pytest.mark.parametrize("pair", sorted(keys_named()), ids="] ".join)
def test_every_config_key_named_exists(pair: tuple[str, str]) -> None:
    """A ``[section] key`` in a guide is one the config reader accepts."""
    assert is_known_key(*pair)


def test_an_unknown_key_is_caught() -> None:
    """The check above can fail: a misspelt key is reported unknown."""
    assert not is_known_key("agents", "team_adress")
    assert is_known_key("agents", "team_address")


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_relative_links_resolve(guide: Path) -> None:
    """Every relative link of a guide points at a file that exists."""
    targets = [t for t in LINK.findall(guide.read_text("utf-8")) if "://" not in t]
    missing = [t for t in targets if not (guide.parent / t).exists()]
    assert missing == []
