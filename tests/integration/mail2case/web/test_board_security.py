"""The board's security over real HTTP on 127.0.0.1: sessions, CSRF, links, escaping, downloads."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from mail2case import app
from mail2case.web.site import make_signin
from storage.models import Attachment, Outbox
from tests.support.board import (
    AGENT,
    Client,
    board_extra,
    path_of,
    redeem,
    served,
    sign_in,
    site_config,
)
from tests.support.daemon import Site
from tests.support.mail import plain_mail
from tests.support.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mail2case.config.settings import Config

SCRIPT = "<script>alert(1)</script>"
HOSTILE_NAME = "../../<script>x</script>\x07evil.html"


def hostile_mail() -> EmailMessage:
    """A customer's mail with markup in its subject, body and attachment's name and type."""
    msg = plain_mail("cust@customer.example", f"{SCRIPT} production down", f"Body {SCRIPT}")
    msg.add_attachment(
        f"<html><body>{SCRIPT}</body></html>".encode(),
        maintype="text",
        subtype="html",
        filename=HOSTILE_NAME,
    )
    return msg


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A site with one agent, the board enabled, and one hostile case (ref 1000)."""
    root = tmp_path_factory.mktemp("board")
    site = Site(root, extra=board_extra(root, free_port(), more_web="links_per_hour = 2"))
    site.write()
    site.cli("ingest", stdin=bytes(hostile_mail()))
    return site


@pytest.fixture(scope="module")
def config(site: Site) -> Config:
    """The site's configuration."""
    return site_config(site)


@pytest.fixture(scope="module")
def base(config: Config) -> Iterator[str]:
    """The board, served for the whole module."""
    with served(config) as url:
        yield url


@pytest.fixture
def agent(base: str, site: Site) -> Client:
    """A client signed in as the agent."""
    client = Client(base)
    sign_in(client, site)
    return client


def attachment_path(config: Config) -> str:
    """The download path of case 1000's attachment."""
    engine, sessions = app.open_database(config)
    with sessions() as s:
        found = s.scalars(select(Attachment.id)).first()
    engine.dispose()
    return f"/cases/1000/attachments/{found}"


def signin_rows(config: Config) -> int:
    """Sign-in mails queued so far."""
    engine, sessions = app.open_database(config)
    with sessions() as s:
        n = s.scalar(select(func.count()).where(Outbox.kind == "signin"))
    engine.dispose()
    return int(n or 0)


@pytest.mark.parametrize("path", ["/", "/queue/rows", "/cases/1000", "/sla"])
def test_no_page_without_a_session(base: str, path: str) -> None:
    """Every page answers 303 to the sign-in page, and shows nothing of the case."""
    reply = Client(base).get(path)
    assert (reply.status, reply.header("location")) == (303, "/signin")
    assert "production" not in reply.text


def test_no_attachment_without_a_session(base: str, config: Config) -> None:
    """An attachment's URL, known or guessed, gives nothing without a session."""
    reply = Client(base).get(attachment_path(config))
    assert reply.status == 303
    assert SCRIPT.encode() not in reply.body


def test_a_post_without_the_csrf_token_is_refused(agent: Client, site: Site) -> None:
    """A change posted without (or with a wrong) token is 403 and changes nothing."""
    before = site.cli_json("cases", "show", "1000")
    wanted = "low" if before["priority"] != "low" else "high"
    for form in ({}, {"csrf": "forged"}):
        reply = agent.post("/cases/1000/priority", form | {"priority": wanted, "reason": "x"})
        assert reply.status == 403
    after = site.cli_json("cases", "show", "1000")
    assert (after["priority"], after["events"]) == (before["priority"], before["events"])
    assert agent.post("/logout", {}).status == 403
    assert agent.get("/").status == 200


def test_a_post_with_the_token_changes_and_is_audited(agent: Client, site: Site) -> None:
    """The same change with the token is made, recorded with the agent as its actor."""
    csrf = agent.csrf("/cases/1000")
    reply = agent.post("/cases/1000/status", {"csrf": csrf, "status": "pending", "reason": "asked"})
    assert (reply.status, reply.header("location")) == (303, "/cases/1000")
    shown = site.cli_json("cases", "show", "1000")
    assert shown["status"] == "pending"
    changed = [e for e in shown["events"] if e["kind"] == "status_changed"]
    assert changed[-1]["actor"] == AGENT


def test_a_used_link_is_refused(base: str, site: Site) -> None:
    """A link signs in once; the second use is refused and gives no session."""
    link = site.cli("web", "link", AGENT).stdout.decode().strip()
    assert redeem(Client(base), link).status == 303
    again = Client(base)
    assert redeem(again, link).status == 400
    assert again.get("/").status == 303


def test_an_expired_or_forged_link_is_refused(base: str, config: Config) -> None:
    """A link past its lifetime, or signed with another key, signs nobody in."""
    engine, sessions = app.open_database(config)
    signin = make_signin(config, sessions)
    with sessions.begin() as s:  # issued an hour ago: its 15 minutes are over
        old = signin.issue(s, AGENT, datetime.now(UTC) - timedelta(hours=1))
    engine.dispose()
    client = Client(base)
    assert redeem(client, old.url).status == 400
    payload, _, _ = old.url.rpartition(".")
    assert redeem(client, f"{payload}.{'A' * 27}").status == 400
    assert client.get("/").status == 303


def test_a_non_agent_gets_no_link(base: str, site: Site, config: Config) -> None:
    """The CLI exits 2 and prints no URL; the page answers as for anyone, and mails nothing."""
    proc = site.cli("web", "link", "cust@customer.example", check=False)
    assert (proc.returncode, proc.stdout) == (2, b"")
    before = signin_rows(config)
    client = Client(base)
    reply = client.post("/signin", {"csrf": client.csrf(), "address": "cust@customer.example"})
    assert reply.status == 200
    assert "is on its way" in reply.text
    assert signin_rows(config) == before


def test_links_by_mail_are_rate_limited_per_address(base: str, config: Config) -> None:
    """An agent asking again and again is sent ``links_per_hour`` mails (2 here), no more."""
    client = Client(base)
    before = signin_rows(config)
    for _ in range(4):
        client.post("/signin", {"csrf": client.csrf(), "address": "bob@agents.example"})
    assert signin_rows(config) - before == 2


@pytest.mark.parametrize("path", ["/", "/cases/1000"])
def test_markup_in_subject_body_and_filename_renders_as_text(agent: Client, path: str) -> None:
    """What a customer wrote is escaped: the page holds no script element of theirs."""
    page = agent.get(path).text
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_html_attachment_downloads_and_never_renders(agent: Client, config: Config) -> None:
    """text/html comes back as a download, under a name that is only a name, not sniffed."""
    reply = agent.get(attachment_path(config))
    assert reply.status == 200
    assert reply.body.startswith(b"<html>")
    assert reply.header("content-type") == "application/octet-stream"
    assert reply.header("x-content-type-options") == "nosniff"
    disposition = reply.header("content-disposition")
    assert disposition.startswith("attachment;")
    assert "/" not in disposition.partition("filename*")[0]
    assert "<" not in disposition
    assert "\x07" not in disposition


def test_the_cookie_is_httponly_and_samesite(base: str, site: Site) -> None:
    """The session cookie cannot be read by scripts nor sent by other sites' forms."""
    client = Client(base)
    link = site.cli("web", "link", AGENT).stdout.decode().strip()
    client.get(path_of(link))
    cookie = redeem(client, link).header("set-cookie").lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http on loopback: a Secure cookie would be dropped


def test_the_cookie_is_secure_over_https(config: Config) -> None:
    """With an https base_url the cookie is marked Secure."""
    web = dataclasses.replace(config.web, base_url="https://desk.example")
    with served(dataclasses.replace(config, web=web)) as url:
        cookie = Client(url).get("/signin").header("set-cookie").lower()
    assert "httponly" in cookie
    assert "secure" in cookie


def test_logout_ends_the_session(agent: Client) -> None:
    """After logout the same cookie jar gets the sign-in redirect."""
    reply = agent.post("/logout", {"csrf": agent.csrf("/")})
    assert (reply.status, reply.header("location")) == (303, "/signin")
    assert agent.get("/").status == 303


def test_a_trusted_proxy_names_the_agent(config: Config) -> None:
    """From a trusted proxy the header signs the agent in; from elsewhere it is ignored."""
    header = {"X-Remote-User": AGENT}
    trusted = dataclasses.replace(
        config.web, trusted_proxies=("127.0.0.0/8",), proxy_user_header="X-Remote-User"
    )
    with served(dataclasses.replace(config, web=trusted)) as url:
        assert Client(url, extra_headers=header).get("/").status == 200
        nobody = Client(url, extra_headers={"X-Remote-User": "cust@customer.example"})
        assert nobody.get("/").status == 303
    elsewhere = dataclasses.replace(trusted, trusted_proxies=("192.0.2.0/24",))
    with served(dataclasses.replace(config, web=elsewhere)) as url:
        assert Client(url, extra_headers=header).get("/").status == 303
