"""Old-style lists, and customers reaching us through our own list (issue 18, class 6)."""

from __future__ import annotations

import pytest

from ingest.mime.parse import parse_message
from ingest.triage.classify import Classification, ClassifySettings, Kind, classify
from ingest.triage.lists import is_list_robot

SETTINGS = ClassifySettings(
    own_addresses=frozenset({"support@example.com"}),
    own_domains_message_id=frozenset({"mail2case.example.com"}),
    agent_addresses=frozenset(),
    agent_domains=frozenset(),
)


def run(headers: str) -> Classification:
    """Classify a post by carol@customer.test carrying ``headers``."""
    text = (
        "From: Carol <carol@customer.test>\nTo: users@lists.example.net\nSubject: Question\n"
        f"Message-ID: <m1@customer.test>\n{headers.strip()}\n\nHow do I ...?\n"
    )
    return classify(parse_message(text.encode()), SETTINGS)


@pytest.mark.parametrize(
    "headers",
    [
        "Precedence: bulk\nSender: owner-users@lists.example.net",
        "Precedence: bulk\nX-Loop: owner-majordomo@lists.example.net",
        "Precedence: bulk\nSender: users-bounce@lists.example.net\nErrors-To: users-bounce@x.net",
        "Precedence: junk\nSender: users-request@lists.example.net",
        "Mailing-List: contact users-help@lists.example.net; run by ezmlm",
        "X-Mailing-List: <users@lists.example.net> archive/latest/123",
        "X-BeenThere: users@lists.example.net",
        "X-Mailman-Version: 2.1.39",
        "List-Post: <mailto:users@lists.example.net>",
        "X-ML-Name: users",
    ],
)
def test_old_style_list_marks_make_a_list_post(headers: str) -> None:
    """Majordomo, SmartList, ezmlm, Mailman 2 and fml posts are list mail, not auto-replies."""
    result = run(headers)
    assert result.kind is Kind.LIST, result.reason


def test_bulk_precedence_from_a_person_is_still_automatic() -> None:
    """Precedence: bulk without any list robot stays an automatic notice."""
    result = run("Precedence: bulk\nSender: newsletter@shop.test")
    assert result.kind is Kind.AUTO_REPLY


@pytest.mark.parametrize(
    "headers",
    [
        "List-Id: Support <support.example.com>\nList-Post: <mailto:support@example.com>",
        "List-Id: <support.example.com>\nPrecedence: list",
        "List-Post: <mailto:Support@Example.com>\nPrecedence: bulk",
        "Mailing-list: list support@example.com\nList-Id: <support.example.com>",
    ],
)
def test_our_own_list_delivers_customer_mail(headers: str) -> None:
    """support@ run as a Google Group or Mailman list: its posts are customers' mail."""
    result = run(headers)
    assert result.kind is Kind.CUSTOMER, result.reason


@pytest.mark.parametrize(
    "headers",
    [
        "List-Id: <support.other.test>",
        "List-Post: <mailto:customer-support@example.com>",
        "List-Id: <announce.example.com>",
    ],
)
def test_other_lists_stay_lists(headers: str) -> None:
    """Only a list that names our exact address is ours."""
    assert run(headers).kind is Kind.LIST


def test_auto_reply_through_our_list_is_still_an_auto_reply() -> None:
    """A vacation reply that reaches us through our list is still automatic."""
    result = run("List-Id: <support.example.com>\nAuto-Submitted: auto-replied")
    assert result.kind is Kind.AUTO_REPLY


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("owner-users@lists.example.net", True),
        ("users-owner@lists.example.net", True),
        ("users+owner@groups.example.net", True),
        ("users-request@lists.example.net", True),
        ("users-bounces+carol=customer.test@lists.example.net", True),
        ("majordomo@lists.example.net", True),
        ("carol@customer.test", False),
        ("owner@shop.test", False),
        ("requests@shop.test", False),
    ],
)
def test_list_robot_addresses(address: str, *, expected: bool) -> None:
    """List managers' administrative addresses are recognised; ordinary ones are not."""
    assert is_list_robot(address) is expected
