"""Case tokens in subjects, who may join a case by token alone, and threading by ids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ingest.triage.reply_matching import CaseToken, choose_thread, is_participant


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


@dataclass(frozen=True)
class Hit:
    """A stored message carrying an id (as storage.cases.ThreadHit), on case ``case``."""

    message_id: str
    ours: bool
    row_id: int
    case: str


def members(*cases: str) -> Callable[[str], bool]:
    """``may_join`` for a sender who is a participant of ``cases`` only."""
    return lambda case: case in cases


def test_a_reused_message_id_never_takes_the_first_copys_thread_over() -> None:
    """Victim's <X> opened A; the attacker's copy of <X> opened B: <X> means A."""
    hits = [Hit("<x>", False, 1, "A"), Hit("<x>", False, 2, "B")]
    assert choose_thread(["<x>"], hits, members("A", "B")) == "A"


def test_an_id_we_generated_wins_over_any_customer_id() -> None:
    """The victim replies to our ack (In-Reply-To ours, References <X>): case A."""
    hits = [Hit("<x>", False, 5, "B"), Hit("<ack>", True, 3, "A")]
    assert choose_thread(["<ack>", "<x>"], hits, members("A", "B")) == "A"


def test_in_reply_to_decides_before_references() -> None:
    """The message answered directly decides, not the newest stored row."""
    hits = [Hit("<old>", False, 9, "B"), Hit("<direct>", False, 1, "A")]
    assert choose_thread(["<direct>", "<old>"], hits, members("A", "B")) == "A"


def test_a_stranger_does_not_join_by_a_customer_message_id() -> None:
    """A customer's own Message-ID threads only a participant's mail onto the case."""
    hits = [Hit("<x>", False, 1, "A")]
    assert choose_thread(["<x>"], hits, members()) is None
    assert choose_thread(["<x>"], hits, members("A")) == "A"


def test_an_id_we_generated_is_proof_enough() -> None:
    """Our random ids reach only the case's people (and bounces of our mail): no check."""
    hits = [Hit("<ack>", True, 1, "A")]
    assert choose_thread(["<ack>"], hits, members()) == "A"


def test_nothing_referenced_is_nothing_found() -> None:
    """No stored id: no case."""
    assert choose_thread(["<x>"], [], members("A")) is None
    assert choose_thread([], [Hit("<x>", False, 1, "A")], members("A")) is None
