"""Message-IDs of the mail we send: one maker, a valid msg-id whatever the inputs, unique."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import HeaderRegistry
from email.utils import parseaddr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.render import Envelope, build_environment, render_mail
from storage.outbox import new_message_id

# RFC 5322 3.6.4 without the obsolete forms: "<" dot-atom-text "@" dot-atom-text ">".
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
MSG_ID = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>")
RANDOM = r"\.[0-9a-f]{16}"
ENV = build_environment()


def assert_valid_msg_id(msg_id: str) -> None:
    """``msg_id`` is an RFC 5322 msg-id: by the grammar and by the stdlib's parsers."""
    assert MSG_ID.fullmatch(msg_id), msg_id
    header = HeaderRegistry()("Message-ID", msg_id)
    assert header.defects == ()
    assert str(header) == msg_id
    assert parseaddr(msg_id) == ("", msg_id[1:-1])


@given(prefix=st.text(max_size=300), domain=st.text(max_size=300))
def test_any_prefix_and_domain_make_a_valid_unique_msg_id(prefix: str, domain: str) -> None:
    """Whatever the prefix and domain hold, the id parses as a msg-id and never repeats."""
    first, second = new_message_id(prefix, domain), new_message_id(prefix, domain)
    assert_valid_msg_id(first)
    assert first != second
    domain_part = first.rpartition("@")[2].removesuffix(">")
    assert re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", domain_part)
    assert second.rpartition("@")[2] == first.rpartition("@")[2]


@given(prefix=st.text(max_size=100), domain=st.text(max_size=100))
def test_the_id_survives_rendering_and_parsing_unchanged(prefix: str, domain: str) -> None:
    """A mail rendered with the id reads back with that Message-ID (a long one folded)."""
    msg_id = new_message_id(prefix, domain)
    envelope = Envelope("Support", "support@example.com", ("a@example.com",), "Hi", msg_id)
    mail = render_mail(
        ENV,
        "relay",
        {"text": "x", "support_name": "S", "ref_token": "[#1]"},
        envelope,
        now=datetime(2026, 12, 7, 13, tzinfo=UTC),
    )
    parsed = message_from_bytes(mail.as_bytes(), policy=policy.default)
    assert parsed["Message-ID"].strip() == msg_id


def test_ids_are_unique() -> None:
    """A thousand ids for one case are a thousand different ids."""
    assert len({new_message_id("case1042", "example.com") for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("prefix", "domain", "pattern"),
    [
        ("case1042", "example.com", rf"<case1042{RANDOM}@example\.com>"),
        (
            "sla.reminder.7",
            "Support.EXAMPLE.com.",
            rf"<sla\.reminder\.7{RANDOM}@support\.example\.com>",
        ),
        ("a b@c<d>", "exa mple.com>", rf"<a-b-c-d{RANDOM}@example\.com>"),
        ("..case..1..", "a..b", rf"<case\.1{RANDOM}@a\.b>"),
        ("", "", rf"<mail2case{RANDOM}@localhost>"),
        ("<>", "@@@", rf"<mail2case{RANDOM}@localhost>"),
        ("x", "Bücher.example", rf"<x{RANDOM}@xn--bcher-kva\.example>"),
        ("x", "[192.0.2.1]", rf"<x{RANDOM}@192\.0\.2\.1>"),
        ("x" * 100, "example.com", rf"<x{{64}}{RANDOM}@example\.com>"),
    ],
)
def test_prefix_and_domain_are_made_dot_atoms(prefix: str, domain: str, pattern: str) -> None:
    """Unsafe characters go, the domain is lower-cased and IDNA, empty parts fall back."""
    assert re.fullmatch(pattern, new_message_id(prefix, domain))
