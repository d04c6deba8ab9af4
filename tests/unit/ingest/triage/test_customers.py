"""Customer matching by address and domain."""

from __future__ import annotations

from ingest.triage.customers import CustomerDirectory, CustomerRule


def rule(
    name: str, *, addresses: tuple[str, ...] = (), domains: tuple[str, ...] = ()
) -> CustomerRule:
    """A standard-plan rule."""
    return CustomerRule(name, frozenset(addresses), frozenset(domains), "standard", "UTC")


DEFAULT = rule("")
DIRECTORY = CustomerDirectory(
    (
        rule("Parent", domains=("example.com",)),
        rule("Child", domains=("eu.example.com",)),
        rule("Person", addresses=("boss@example.com",)),
    ),
    DEFAULT,
)


def test_exact_address_beats_domain() -> None:
    """An address listed for a customer wins over a domain match."""
    assert DIRECTORY.resolve("Boss@Example.com").name == "Person"


def test_longest_domain_wins_and_subdomains_match() -> None:
    """The most specific domain wins; subdomains of a listed domain match it."""
    assert DIRECTORY.resolve("a@eu.example.com").name == "Child"
    assert DIRECTORY.resolve("a@mail.eu.example.com").name == "Child"
    assert DIRECTORY.resolve("a@us.example.com").name == "Parent"


def test_lookalike_domain_does_not_match() -> None:
    """A domain that merely ends with the same letters is not the customer's."""
    assert DIRECTORY.match("a@badexample.com") is None
    assert DIRECTORY.resolve("a@badexample.com") is DEFAULT
