"""Signed per-case reply addresses: building, parsing, and refusing forgeries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.agents.reply_address import (
    SIGNATURE_HEX_CHARS,
    claimed_ref,
    parse_reply_address,
    reply_address,
    signature,
)

SECRET = "s3cret-for-tests"
OURS = frozenset({"support@example.com", "help@example.org"})


def test_shape_of_reply_address() -> None:
    """The address is the support address plus-extended with the ref and a hex signature."""
    address = reply_address("support@example.com", 1042, SECRET)
    local, _, domain = address.partition("@")
    assert domain == "example.com"
    assert local.startswith("support+1042-")
    assert len(local.rpartition("-")[2]) == SIGNATURE_HEX_CHARS
    assert len(local) <= 64


def test_existing_plus_extension_is_replaced() -> None:
    """A support address that is itself plus-extended is signed on its base."""
    assert reply_address("support+eu@example.com", 7, SECRET).startswith("support+7-")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (reply_address("support@example.com", 1042, SECRET), 1042),
        (reply_address("support@example.com", 1042, SECRET).upper(), 1042),
        (reply_address("help@example.org", 5, SECRET), 5),
        ("support@example.com", None),
        ("support+billing@example.com", None),
        (reply_address("support@example.com", 1042, SECRET).replace("@", "@evil."), None),
        (reply_address("support@example.com", 1042, "other secret"), None),
        ("support+1042-0000000000@example.com", None),
        ("support+1042-" + signature(1043, SECRET) + "@example.com", None),
        ("", None),
    ],
)
def test_parse_table(address: str, expected: int | None) -> None:
    """Only our own address with a signature for exactly that ref verifies."""
    assert parse_reply_address(address, OURS, SECRET) == expected


def test_no_secret_never_verifies_or_signs() -> None:
    """Without a configured secret there is no agent authority at all."""
    address = reply_address("support@example.com", 1, SECRET)
    assert parse_reply_address(address, OURS, "") is None
    with pytest.raises(ValueError, match="secret"):
        reply_address("support@example.com", 1, "")


def test_claimed_ref_ignores_signature() -> None:
    """The claimed ref is read without checking: it names the case a forger aimed at."""
    assert claimed_ref("support+77-ffffffffff@example.com", OURS) == 77
    assert claimed_ref("support+news@example.com", OURS) is None


def test_unusable_support_address_refused() -> None:
    """A support address without a domain cannot be extended."""
    with pytest.raises(ValueError, match="reply address"):
        reply_address("support", 1, SECRET)


refs = st.integers(min_value=0, max_value=10**12 - 1)
secrets_ = st.text(min_size=1, max_size=40)


@given(ref=refs, secret=secrets_)
def test_round_trip(ref: int, secret: str) -> None:
    """Parsing a built reply address gives back its case ref, for any ref and secret."""
    assert (
        parse_reply_address(reply_address("support@example.com", ref, secret), OURS, secret) == ref
    )


@given(
    ref=refs, position=st.integers(min_value=0, max_value=SIGNATURE_HEX_CHARS - 1), data=st.data()
)
def test_flipped_signature_character_never_verifies(
    ref: int, position: int, data: st.DataObject
) -> None:
    """Changing any one character of the signature makes the address unverifiable."""
    address = reply_address("support@example.com", ref, SECRET)
    local, _, domain = address.partition("@")
    prefix, _, sig = local.rpartition("-")
    other = data.draw(st.sampled_from([c for c in "0123456789abcdef" if c != sig[position]]))
    forged = f"{prefix}-{sig[:position]}{other}{sig[position + 1 :]}@{domain}"
    assert parse_reply_address(forged, OURS, SECRET) is None


@given(ref=refs, other=refs)
def test_signature_of_another_case_never_verifies(ref: int, other: int) -> None:
    """A signature is bound to its ref: moving it to another case number fails."""
    if ref == other:
        return
    forged = f"support+{other}-{signature(ref, SECRET)}@example.com"
    assert parse_reply_address(forged, OURS, SECRET) is None
