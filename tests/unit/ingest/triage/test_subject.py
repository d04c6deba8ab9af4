"""Reply and forward prefixes of subjects: one rule for acknowledgements, relays and priority."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.triage.subject import SUBJECT_PREFIXES, bare_subject


@pytest.mark.parametrize(
    ("subject", "bare"),
    [
        ("Re: Export fails", "Export fails"),
        ("RE: RE: Fwd: Export fails", "Export fails"),
        ("Re[2]: Export fails", "Export fails"),
        ("Re(3): Export fails", "Export fails"),
        ("RE^2: Export fails", "Export fails"),
        ("Re : Export fails", "Export fails"),  # French typography: a space before the colon
        ("re:Export fails", "Export fails"),
        ("AW: WG: Export fehlgeschlagen", "Export fehlgeschlagen"),
        ("SV: VS: VB: Export", "Export"),
        ("Antw: Doorst: Export", "Export"),
        ("TR: RE : Export", "Export"),
        ("RV: Export", "Export"),
        ("R: RIF: I: Export", "I: Export"),  # "I:" alone is too likely an English subject
        ("Odp: PD: Export", "Export"),
        ("RES: ENC: Export", "Export"),
        ("ΑΠ: Export", "Export"),
        ("回复\uff1a导出失败", "导出失败"),  # a full-width colon
        ("  Fwd:   Export  ", "Export"),
        ("Re: [#1042] Export: all rows", "[#1042] Export: all rows"),
        ("Fwd:", ""),
        ("Export fails", "Export fails"),
        ("Report: export fails", "Report: export fails"),
        ("Reply: export fails", "Reply: export fails"),
        ("Research: results", "Research: results"),
        ("R2: export", "R2: export"),
        ("Export re: fails", "Export re: fails"),
    ],
)
def test_leading_reply_and_forward_prefixes_go(subject: str, bare: str) -> None:
    """Localized, repeated and counted prefixes go; words that merely start alike stay."""
    assert bare_subject(subject) == bare


@given(
    st.lists(st.sampled_from(SUBJECT_PREFIXES), max_size=4),
    st.sampled_from(["", "[2]", "(2)", "^2"]),
    st.sampled_from([":", " :", "\uff1a", ": "]),
    st.text(max_size=60),
)
def test_prefixes_before_any_subject_change_nothing(
    prefixes: list[str], counter: str, colon: str, subject: str
) -> None:
    """A subject with reply or forward prefixes put before it is bare as the subject is."""
    prefixed = "".join(f"{p.upper()}{counter}{colon} " for p in prefixes) + subject
    assert bare_subject(prefixed) == bare_subject(subject)


@given(st.text(max_size=80))
def test_a_bare_subject_stays_bare(subject: str) -> None:
    """Stripping twice is stripping once: nothing the first pass leaves is a prefix."""
    assert bare_subject(bare_subject(subject)) == bare_subject(subject)
