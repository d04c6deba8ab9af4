"""Case tokens in subjects and who may join a case by token alone."""

from __future__ import annotations

from ingest.triage.reply_matching import CaseToken, is_participant


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

    def may(address: str, *, agent: bool = False, domains: tuple[str, ...] = ()) -> bool:
        return is_participant(
            address,
            customer_address="Alice@Acme.example",
            participants=["carol@partner.example"],
            customer_domains=domains,
            agent=agent,
        )

    assert may("alice@acme.example")
    assert may("CAROL@partner.example")
    assert may("x@anywhere.example", agent=True)
    assert may("bob@acme.example", domains=("acme.example",))


def test_strangers_may_not_join() -> None:
    """Someone at an unconfigured shared domain, or elsewhere, may not join by token."""
    assert not is_participant(
        "mallory@gmail.example", customer_address="alice@gmail.example", participants=[]
    )
    assert not is_participant(
        "mallory@evil.example",
        customer_address="alice@gmail.example",
        participants=[],
        customer_domains=["acme.example"],
    )
