"""The auto-reply body search's ASCII fast path finds exactly what the full search finds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.triage.auto_replies import _AUTOMATIC_BODY, _automatic_body

PHRASES = [
    "This is an automated reply",
    "THIS IS AN AUTOMATIC MESSAGE",
    "has been automatically generated",
    "this automatically generated",
    "Please do not reply to this e-mail",
    "I am currently out of the office",
    "I'm on holiday",
    "Ich bin bis Montag nicht im Büro",
    "ICH BIN DERZEIT ABWESEND",
    "Je suis absent",
    "estoy de vacaciones",
    "there is no need to reply to this",
    "automatisch",
    "I will be away",
    # Letters the engine folds to ASCII: dotless i, long s, dotted capital I.
    "th\u0131s is an automated reply",
    "Plea\u017fe do not reply to this message",
    "\u0130 am away",
]
# Characters the engine folds to ASCII letters under IGNORECASE (dotted I, long s,
# Kelvin, dotless i): the fast path must leave such text to the full search.
FILLER = [
    # Plain non-ASCII letters (the fast path takes them) and some that are not plain.
    "é",
    "ß",
    "\u1e9e",
    "Ω",
    "\u2126",
    "a",
    " ",
    "\n",
    "is",
    "this ",
    "\u0130",
    "\u017f",
    "\u212a",
    "\u0131",
    "Ü",
    "x" * 30,
    ".",
    "'",
]


@given(st.lists(st.sampled_from(PHRASES + FILLER), max_size=8))
def test_the_fast_path_finds_the_same_match(pieces: list[str]) -> None:
    """Same span, or nothing for both, in ASCII and non-ASCII text alike."""
    text = "".join(pieces)
    ours, full = _automatic_body(text), _AUTOMATIC_BODY.search(text)
    assert (ours and ours.span()) == (full and full.span())


def test_the_pattern_is_lower_case() -> None:
    """The fast path searches lower-cased text case-sensitively: upper case would miss."""
    assert _AUTOMATIC_BODY.pattern == _AUTOMATIC_BODY.pattern.lower()
