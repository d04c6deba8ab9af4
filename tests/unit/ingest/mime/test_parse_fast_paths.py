"""The parser's fast paths read exactly what the slower general paths read."""

from __future__ import annotations

from email.policy import EmailPolicy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.mime.parse import _policy_addresses, _simple_addresses, crlf_to_lf
from ingest.mime.parsed import Address
from ingest.mime.policy import POLICY

NAMES = ["Customer 0", "A B", "  A   B ", '"Smith, J"', '""', '" x"', '"a  b"', "", "O'Neil", "x=y"]
ADDRS = ["a@b.c", "A.B@C.D", "a@b", "a+b@c-d.e", "a..b@c", "a@b..c", ".a@b", "a@b.", "a@[1.2.3.4]"]
PIECES = [
    *NAMES,
    *ADDRS,
    "<",
    ">",
    ",",
    '"',
    "\\",
    " ",
    "\t",
    "(c)",
    "=?utf-8?q?x?=",
    "é",
    "@",
    ".",
]


@st.composite
def mailbox_lists(draw: st.DrawFn) -> str:
    """Lists of mailboxes in the common shapes, some of them malformed."""
    boxes = []
    for _ in range(draw(st.integers(1, 3))):
        name, addr = draw(st.sampled_from(NAMES)), draw(st.sampled_from(ADDRS))
        shapes = [f"{name} <{addr}>", addr, f"{name}<{addr}>", f" {addr} ", f"<{addr}>"]
        boxes.append(draw(st.sampled_from(shapes)))
    return draw(st.sampled_from([",", ", ", " ,"])).join(boxes)


@settings(max_examples=500, deadline=None)
@given(st.one_of(mailbox_lists(), st.lists(st.sampled_from(PIECES), max_size=10).map("".join)))
def test_simple_addresses_agree_with_the_policy_parser(value: str) -> None:
    """Where the fast path reads a header at all, it reads what the policy's parser reads."""
    fast = _simple_addresses(value)
    if fast is not None:
        assert fast == _policy_addresses("to", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Customer 7 <c7@x.example>", [Address("Customer 7", "c7@x.example")]),
        (" A \t B<a@b.c> ", [Address("A B", "a@b.c")]),
        ('"Smith,  John" <j@x.y>', [Address("Smith,  John", "j@x.y")]),
        ("a@b.c, B <b@c.d>", [Address("", "a@b.c"), Address("B", "b@c.d")]),
        ("a..b@c.d", None),
        ("=?utf-8?q?J=C3=B6rg?= <j@x.y>", None),
        ("Jo.hn <j@x.y>", None),
    ],
)
def test_simple_addresses(value: str, expected: list[Address] | None) -> None:
    """Common shapes are read; odd ones are left to the policy's parser."""
    assert _simple_addresses(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "text/plain; charset=utf-8",
        'multipart/mixed;\r\n boundary="b1"',
        "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf",
        "x" * 9000,
    ],
)
def test_cached_header_reads_equal_the_stock_read(value: str) -> None:
    """The policy's cached read returns what EmailPolicy's own read returns."""
    for name in ("Content-Type", "Content-Disposition", "Subject"):
        ours = POLICY.header_fetch_parse(name, value)
        stock = EmailPolicy.header_fetch_parse(POLICY, name, value)
        # HeaderRegistry makes a fresh class for every header it parses, so compare
        # what the classes are made of, not their identity.
        assert (type(ours).__bases__, ours, getattr(ours, "params", None)) == (
            type(stock).__bases__,
            stock,
            getattr(stock, "params", None),
        )
        assert POLICY.header_fetch_parse(name, ours) is ours  # a header object as is


@given(st.lists(st.sampled_from(["\r\n", "\r", "\n", "a", "\r\r\n", "\n\r", "é"]), max_size=20))
def test_crlf_to_lf_is_replace(pieces: list[str]) -> None:
    """Lone CRs, lone LFs and pairs in any order: the same bytes as ``replace``."""
    data = "".join(pieces).encode()
    assert crlf_to_lf(data) == data.replace(b"\r\n", b"\n")
