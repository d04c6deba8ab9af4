"""The ``[web]`` table: defaults, and each bad value named by its key."""

from __future__ import annotations

from typing import Any

import pytest

from mail2case.config.reader import ConfigError
from mail2case.config.settings import config_from_mapping


def problems(web: dict[str, Any]) -> list[str]:
    """The problems a config with this ``[web]`` table has."""
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"web": web})
    return caught.value.problems


def test_the_board_is_off_on_loopback_by_default() -> None:
    """Unconfigured, the board is off, and its URL is derived from host and port."""
    web = config_from_mapping({}).web
    assert web.enabled is False
    assert web.url == "http://127.0.0.1:8025"
    assert web.is_https is False


def test_base_url_sets_links_and_https() -> None:
    """A base_url with https marks the cookie Secure and loses its trailing slash."""
    web = config_from_mapping({"web": {"base_url": "https://desk.example/board/"}}).web
    assert web.url == "https://desk.example/board"
    assert web.is_https is True


@pytest.mark.parametrize(
    ("web", "key"),
    [
        ({"port": 0}, "web.port"),
        ({"enabled": "yes"}, "web.enabled"),
        ({"base_url": "ftp://x"}, "web.base_url"),
        ({"base_url": "desk.example"}, "web.base_url"),
        ({"trusted_proxies": ["not-an-ip"]}, "web.trusted_proxies"),
        ({"proxy_user_header": "X-User"}, "web.proxy_user_header"),
        (
            {"proxy_user_header": "bad header", "trusted_proxies": ["127.0.0.1"]},
            "web.proxy_user_header",
        ),
        ({"session_secret_file": ""}, "web.session_secret_file"),
        ({"link_minutes": 0}, "web.link_minutes"),
        ({"colour": "red"}, "web.colour"),
    ],
)
def test_a_bad_value_names_its_key(web: dict[str, Any], key: str) -> None:
    """Each bad [web] value is reported under its dotted key."""
    assert [p for p in problems(web) if p.startswith(f"{key}:")]


def test_trusted_proxies_are_normalized_networks() -> None:
    """Addresses and networks are kept as networks, a lone address as a /32."""
    web = config_from_mapping(
        {"web": {"trusted_proxies": ["10.1.2.3/8", "192.0.2.7"], "proxy_user_header": "X-User"}}
    ).web
    assert web.trusted_proxies == ("10.0.0.0/8", "192.0.2.7/32")
