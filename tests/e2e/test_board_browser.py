"""The queue board in a real browser: Debian's chromium driven by Playwright, on the daemon.

The daemon runs as a process with ``[web] enabled``; the browser signs in with the link
the daemon mails, reads the queue, filters it, opens a case, downloads an attachment,
changes a priority (then read back with the CLI) and signs out. It saves a screenshot
of each page into docs/ (docs/board-*.png), for the README and docs/board.md.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.board import AGENT, board_extra
from tests.support.daemon import Daemon, Site, wait_for
from tests.support.mail import plain_mail
from tests.support.services import free_port, missing

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import EmailMessage

    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"
PREMIER = '\n[[customers]]\nname = "Acme"\ndomains = ["acme.example"]\nplan = "premier"\n'
TEAM = "team@example.com"
# Notices go to the team, with a signed Reply-To an agent answers (an internal note here).
AGENTS = f'team_address = "{TEAM}"\nreply_secret = "board-e2e-secret-0123456789abcdef"'
NOTE = "Checked the report: they run the old version."
WAIT_MS = 10_000
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
# Written in this order; the queue puts priority first, then premier, then the oldest.
CASES = (
    ("ann@customer.example", "How do I export reports?", "How to configure the CSV export?"),
    ("bob@acme.example", "Minor bug in our staging setup", "A non-critical bug in staging."),
    ("cat@customer.example", "Production down", "Production database corrupted, data loss."),
    ("dan@acme.example", "Complete outage", "Complete service failure in production."),
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A site with an agent, a premier customer and the board on a free port."""
    root = tmp_path_factory.mktemp("board-browser")
    port = free_port()
    web = f'base_url = "http://127.0.0.1:{port}"'
    site = Site(root, extra=board_extra(root, port, more_web=web, more_agents=AGENTS) + PREMIER)
    site.write()
    return site


@pytest.fixture(scope="module")
def board(site: Site) -> Iterator[str]:
    """The daemon serving the board, with the cases written in; yields the board's URL."""
    d = Daemon(site).start()
    try:
        for sender, subject, body in CASES:
            site.cli("ingest", stdin=bytes(plain_mail(sender, subject, body)))
        with_file = plain_mail("eve@customer.example", "Report attached", "See the report.")
        with_file.add_attachment(
            b"<html><script>alert(1)</script>report</html>",
            maintype="text",
            subtype="html",
            filename="report.html",
        )
        site.cli("ingest", stdin=bytes(with_file))
        base = re.search(r'base_url = "([^"]+)"', site.extra)
        assert base is not None
        site.cli("ingest", stdin=bytes(internal_note(site, base.group(1))))
        yield base.group(1)
    finally:
        assert d.stop() == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium for the module (Debian's; Playwright downloads none)."""
    if shutil.which(CHROMIUM) is None:
        missing("chromium", "apt-get install chromium (scripts/test-services.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser: Browser, board: str, site: Site) -> Iterator[Page]:
    """A page signed in as the agent with a link from ``mail2case web link``."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    link = site.cli("web", "link", AGENT).stdout.decode().strip()
    page.goto(link)
    page.click("#signin-button")
    page.wait_for_url(f"{board}/")
    yield page
    context.close()


def text_of(raw: bytes) -> str:
    """The plain-text body of a mail."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def internal_note(site: Site, base: str) -> EmailMessage:
    """The agent's ``#internal`` answer to the team's notice of the case with the report.

    The notice must link the case page (``[web] base_url`` is set).
    """

    def notice() -> EmailMessage | None:
        for raw in site.outgoing_messages():
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            if TEAM in str(msg["To"]) and "Report attached" in str(msg["Subject"]):
                return msg
        return None

    found: EmailMessage = wait_for(notice, timeout=15)
    ref = re.search(r"\[#(\d+)\]", str(found["Subject"]))
    assert ref is not None
    assert f"Case page: {base}/cases/{ref.group(1)}" in text_of(found.as_bytes())
    return plain_mail(
        AGENT,
        "Re: " + str(found["Subject"]),
        f"#internal\n{NOTE}\n",
        to=str(found["Reply-To"]),
        In_Reply_To=str(found["Message-ID"]),
    )


def mailed_link(site: Site, before: int) -> str:
    """The sign-in URL in the newest mail of the outgoing maildir (after ``before`` mails)."""
    mails = wait_for(lambda: site.outgoing_messages()[before:], timeout=15)
    found = re.search(r"http://\S+/signin/link\?token=\S+", text_of(mails[-1]))
    assert found is not None
    return found.group(0)


def case_ref(site: Site, subject: str) -> int:
    """The ref of the case with ``subject``."""
    return next(int(r["ref"]) for r in site.cli_json("cases", "list") if r["subject"] == subject)


def queue_order(site: Site) -> list[int]:
    """The refs of open cases in queue order, computed from the CLI's own listing."""
    rows: list[dict[str, Any]] = site.cli_json("cases", "list")

    def key(r: dict[str, Any]) -> tuple[int, int, str]:
        return (PRIORITY_RANK[r["priority"]], r["plan"] != "premier", r["opened_at"])

    return [r["ref"] for r in sorted(rows, key=key) if r["status"] in {"open", "pending"}]


def test_sign_in_by_mailed_link_and_log_out(browser: Browser, board: str, site: Site) -> None:
    """/ sends a stranger to sign in; the mailed link signs the agent in; logout ends it."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{board}/")
    page.wait_for_url(f"{board}/signin")
    before = len(site.outgoing_messages())
    page.fill("input[name=address]", AGENT)
    page.screenshot(path=str(DOCS / "board-signin.png"))
    page.click("button[type=submit]")
    page.wait_for_selector("#signin-sent")
    page.goto(mailed_link(site, before))
    page.click("#signin-button")
    page.wait_for_url(f"{board}/")
    assert page.inner_text("header .who") == AGENT
    page.click("#logout")
    page.wait_for_url(f"{board}/signin")
    page.goto(f"{board}/")
    assert page.url == f"{board}/signin"
    context.close()


def seconds_left(countdown: str) -> int:
    """The seconds a "59m 53s" countdown shows (the board's format under an hour)."""
    minutes, seconds = countdown.split()
    return int(minutes.rstrip("m")) * 60 + int(seconds.rstrip("s"))


def test_the_queue_is_in_order_with_a_moving_countdown(page: Page, board: str, site: Site) -> None:
    """One row per open case in queue order; the countdowns tick in the browser."""
    # The browser's clock is the test's: a countdown hours away shows minutes only, so
    # the test moves the clock on a minute and a half rather than wait for it.
    page.clock.install()
    page.goto(f"{board}/")
    refs = [int(r.get_attribute("data-ref") or 0) for r in page.locator("tr[data-ref]").all()]
    assert refs == queue_order(site)
    assert len(refs) == len(CASES) + 1
    countdown = page.locator("tr[data-ref] .countdown").first
    first = countdown.inner_text()
    page.clock.run_for(90_000)
    deadline = time.monotonic() + 5
    while countdown.inner_text() == first and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    moved = countdown.inner_text()
    assert moved != first
    # A refresh brings the server's countdowns (its clock never moved): the browser's
    # clock must win at once, not a second later, or the countdown jumps back.
    page.evaluate(
        "() => new Promise(done => {"
        " document.addEventListener('htmx:afterSwap', () => done(), {once: true});"
        " htmx.ajax('GET', '/queue/rows', {target: '#queue', swap: 'innerHTML'}); })"
    )
    assert seconds_left(countdown.inner_text()) <= seconds_left(first) - 80
    page.screenshot(path=str(DOCS / "board-queue.png"), full_page=True)


def test_a_filter_narrows_the_queue_without_a_reload(page: Page, board: str, site: Site) -> None:
    """Choosing a plan swaps the table in place (htmx): only premier cases remain."""
    page.goto(f"{board}/")
    page.evaluate("window.notReloaded = true")
    page.select_option("select[name=plan]", "premier")
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect(page.locator("tr[data-ref]")).to_have_count(2, timeout=WAIT_MS)
    premier = {r["ref"] for r in site.cli_json("cases", "list") if r["plan"] == "premier"}
    shown = {int(r.get_attribute("data-ref") or 0) for r in page.locator("tr[data-ref]").all()}
    assert shown == premier
    assert page.evaluate("window.notReloaded") is True


def test_a_case_page_with_its_attachment(page: Page, board: str, site: Site) -> None:
    """The case page shows the thread, clocks and audit; the HTML attachment downloads."""
    ref = next(
        r["ref"] for r in site.cli_json("cases", "list") if r["subject"] == "Report attached"
    )
    page.goto(f"{board}/cases/{ref}")
    assert "Report attached" in page.inner_text("#case-title")
    assert page.locator("#clocks tbody tr").count() >= 1
    assert "opened" in page.inner_text("#audit")
    with page.expect_download() as info:
        page.click("text=report.html")
    download = info.value
    assert download.suggested_filename == "report.html"
    assert Path(download.path()).read_bytes().startswith(b"<html><script>")
    page.screenshot(path=str(DOCS / "board-case.png"), full_page=True)


def test_a_priority_change_shows_in_the_cli(page: Page, board: str, site: Site) -> None:
    """Recategorized on the board, the case shows the new priority and its audit event."""
    ref = next(
        r["ref"] for r in site.cli_json("cases", "list") if r["subject"] == "Production down"
    )
    page.goto(f"{board}/cases/{ref}")
    page.select_option("select[name=priority]", "low")
    page.fill("input[name=reason]", "a test system, not production")
    page.click("#change-priority")
    page.wait_for_selector("#priority:has-text('low')")
    shown = site.cli_json("cases", "show", str(ref))
    assert shown["priority"] == "low"
    event = next(e for e in shown["events"] if e["kind"] == "priority_changed")
    assert event["actor"] == AGENT
    assert "a test system, not production" in event["detail"]


def test_the_sla_report(page: Page, board: str) -> None:
    """/sla shows the compliance table, the breaches chart (SVG) and the backlog."""
    page.goto(f"{board}/sla")
    assert page.locator("#compliance tbody tr").count() == 6  # 2 plans x 3 priorities
    assert page.locator("svg#breaches-chart").count() == 1
    assert "under 1 day" in page.inner_text("#backlog")
    page.screenshot(path=str(DOCS / "board-sla.png"), full_page=True)
