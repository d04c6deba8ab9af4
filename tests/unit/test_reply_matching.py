"""Case tokens in subjects and who may join a case by token alone."""

from __future__ import annotations

from ingest.reply_matching import CaseToken, is_participant


def test_token_round_trip() -> None:
    """A rendered token is found again, also with spaces and among other text."""
    token = CaseToken("#")
    assert token.render(1042) == "[#1042]"
    assert token.refs_in("Re: Help [#1042] and [ # 7 ]") == [1042, 7]
    assert token.refs_in("Issue #1042 without brackets") == []


def test_custom_prefix_is_escaped() -> None:
    """A prefix with regex characters is matched literally."""
    token = CaseToken("Case+")
    assert token.refs_in("[Case+12] x [Case12]") == [12]


def test_subject_gets_token_once() -> None:
    """Adding the token to a subject that already has it changes nothing."""
    token = CaseToken("#")
    once = token.subject_with_token(5, "Printer on fire")
    assert once == "Printer on fire [#5]"
    assert token.subject_with_token(5, once) == once
    assert token.subject_with_token(5, "  ") == "(no subject) [#5]"


def test_participants_may_join() -> None:
    """The customer, copied participants, agents and configured customer domains may join."""
    kw = {"customer_address": "Alice@Acme.example", "participants": ["carol@partner.example"]}
    assert is_participant("alice@acme.example", **kw)
    assert is_participant("CAROL@partner.example", **kw)
    assert is_participant("x@anywhere.example", agent=True, **kw)
    assert is_participant("bob@acme.example", customer_domains=["acme.example"], **kw)


def test_strangers_may_not_join() -> None:
    """Someone at an unconfigured shared domain, or elsewhere, may not join by token."""
    kw = {"customer_address": "alice@gmail.example", "participants": []}
    assert not is_participant("mallory@gmail.example", **kw)
    assert not is_participant("mallory@evil.example", customer_domains=["acme.example"], **kw)
