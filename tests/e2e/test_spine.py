"""End to end over real sockets: SMTP in, case stored, acknowledgement out, reply threaded."""

from __future__ import annotations

import email
import smtplib
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.daemon import Daemon, Site, wait_for
from tests.support.mail import plain_mail

if TYPE_CHECKING:
    from pathlib import Path


def customer_mail(
    subject: str, body: str, *, sender: str = "alice@customer.example", **headers: str
) -> EmailMessage:
    """A plain customer message."""
    return plain_mail(f"Alice Example <{sender}>", subject, body, **headers)


def send(
    site: Site,
    msg: EmailMessage | bytes,
    *,
    rcpt: str = "support@example.com",
    mail_from: str = "alice@customer.example",
) -> None:
    """Deliver one message over SMTP to the daemon."""
    data = msg if isinstance(msg, bytes) else msg.as_bytes()
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=10) as s:
        s.sendmail(mail_from, [rcpt], data)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A fresh site directory with a config file."""
    s = Site(tmp_path)
    s.write()
    return s


def cases_of(site: Site) -> list[dict[str, Any]]:
    """``cases list --json``."""
    return list(site.cli_json("cases", "list"))


def test_mail_becomes_case_with_ack(site: Site, daemon: Daemon) -> None:
    """A customer mail opens a case with plan, priority and due time, acknowledged in words."""
    send(
        site,
        customer_mail(
            "Export button does nothing", "When I click export nothing happens. Is there a way?"
        ),
    )
    listed = wait_for(lambda: cases_of(site))
    case = listed[0]
    assert case["plan"] == "standard"
    assert case["customer"] == "alice@customer.example"
    assert case["priority"] in {"high", "medium", "low"}
    assert case["priority_reason"]
    assert str(case["first_response_due"]).endswith("Z")
    assert case["next_update_due"] is None
    acks = wait_for(site.outgoing_messages)
    ack = email.message_from_bytes(acks[0], policy=default_policy)
    assert f"[#{case['ref']}]" in ack["Subject"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["To"].addresses[0].addr_spec == "alice@customer.example"
    part = ack.get_body(preferencelist=("plain",))
    assert part is not None
    body = part.get_content()
    assert str(case["ref"]) in body
    assert "business hours" in body


def test_reply_threads_onto_same_case(site: Site, daemon: Daemon) -> None:
    """A reply to the acknowledgement joins the case instead of opening a new one."""
    send(site, customer_mail("Cannot log in", "Login fails for me since this morning."))
    ack = email.message_from_bytes(wait_for(site.outgoing_messages)[0], policy=default_policy)
    reply = customer_mail(
        "Re: " + ack["Subject"], "More detail: error 403.", In_Reply_To=ack["Message-ID"]
    )
    send(site, reply)
    detail = wait_for(lambda: (c := cases_of(site)) and c[0]["message_count"] >= 3 and c)
    assert len(detail) == 1
    shown = site.cli_json("cases", "show", str(detail[0]["ref"]))
    assert [m["direction"] for m in shown["messages"]] == ["in", "out", "in"]
    assert len(site.outgoing_messages()) == 1


def test_relay_refused_and_size_limited(site: Site, daemon: Daemon) -> None:
    """Mail for other domains is refused with 550, and an oversized message with 552."""
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=10) as s:
        s.ehlo()
        s.mail("alice@customer.example")
        code, _ = s.rcpt("victim@elsewhere.example")
        assert code == 550
        code, _ = s.rcpt("support+billing@example.com")
        assert code == 250
    big = customer_mail("Huge", "x" * 300_000)
    with pytest.raises(smtplib.SMTPException) as info:
        send(site, big)
    assert "552" in str(info.value)
    assert cases_of(site) == []


def test_malformed_message_is_quarantined(site: Site, daemon: Daemon) -> None:
    """Bytes that are no RFC 5322 message are kept in quarantine with a reason."""
    send(site, b"\x00\x01\x02 not a message\r\n\xff\xfe\r\n")
    rows = wait_for(lambda: site.cli_json("quarantine", "list"))
    assert rows[0]["reason"]
    assert cases_of(site) == []


def test_duplicate_delivery_stored_once(site: Site, daemon: Daemon) -> None:
    """The same message delivered twice (an MTA retry) becomes one case message and one ack."""
    msg = customer_mail("Sync stopped", "Our nightly sync stopped yesterday.")
    send(site, msg)
    send(site, msg, rcpt="support+copy@example.com")
    wait_for(
        lambda: (
            site.cli_json("status")["inbound"]["pending"] == 0
            and site.cli_json("status")["inbound"]["received"] == 2
        )
    )
    listed = cases_of(site)
    assert len(listed) == 1
    assert listed[0]["message_count"] == 2  # the customer's mail and our ack
    assert len(wait_for(site.outgoing_messages)) == 1


def test_stranger_quoting_token_opens_new_case(site: Site, daemon: Daemon) -> None:
    """Someone outside a case who quotes its token gets a case of their own."""
    send(site, customer_mail("Question", "How do I export?"))
    first = wait_for(lambda: cases_of(site))[0]
    send(
        site,
        customer_mail(f"About [#{first['ref']}]", "Let me in", sender="mallory@evil.example"),
        mail_from="mallory@evil.example",
    )
    listed = wait_for(lambda: (c := cases_of(site)) and len(c) == 2 and c)
    assert {c["customer"] for c in listed} == {"alice@customer.example", "mallory@evil.example"}


def test_auto_reply_not_acknowledged(site: Site, daemon: Daemon) -> None:
    """An auto-submitted message opens no case and gets no acknowledgement."""
    send(site, customer_mail("Out of office", "I am away.", Auto_Submitted="auto-replied"))
    wait_for(lambda: site.cli_json("status")["inbound"]["suppressed"] == 1)
    assert cases_of(site) == []
    assert site.outgoing_messages() == []


def test_restart_keeps_everything(site: Site) -> None:
    """Cases, messages and the outbox survive a stop and start of the daemon."""
    d = Daemon(site).start()
    send(site, customer_mail("Billing question", "Where is my invoice?"))
    before = wait_for(lambda: cases_of(site))
    wait_for(site.outgoing_messages)
    assert d.stop() == 0
    d = Daemon(site).start()
    try:
        send(site, customer_mail("Second", "Another question."))
        after = wait_for(lambda: (c := cases_of(site)) and len(c) == 2 and c)
        assert before[0]["ref"] in {c["ref"] for c in after}
        assert len({c["ref"] for c in after}) == 2
    finally:
        assert d.stop() == 0


def test_ingest_from_stdin(site: Site) -> None:
    """``mail2case ingest`` takes a message on stdin, exits 0, and the case exists."""
    proc = site.cli("ingest", stdin=customer_mail("Piped", "Hello from the MTA").as_bytes())
    assert proc.returncode == 0
    listed = cases_of(site)
    assert [c["subject"] for c in listed] == ["Piped"]


@pytest.mark.parametrize("kind", ["directory", "missing"])
def test_ingest_of_what_is_not_a_message_file_fails_for_good(site: Site, kind: str) -> None:
    """A directory or a missing file exits 2, never 75 (an MTA retries 75 for ever)."""
    target = site.root / "target"
    if kind == "directory":
        target.mkdir()
    proc = site.cli("ingest", str(target), check=False)
    assert proc.returncode == 2
    assert b"mail2case: ingest:" in proc.stderr
    assert site.cli_json("status")["inbound"]["pending"] == 0


def test_bad_config_exits_2_naming_key(tmp_path: Path) -> None:
    """A bad value exits 2 and the message names the dotted key."""
    site = Site(tmp_path)
    site.write()
    site.config.write_text(
        site.config.read_text() + "\n[plans.standard.first_response_hours]\nhigh = -1\n"
    )
    site.config.write_text(
        site.config.read_text().replace(f"port = {site.smtp_port}", "port = 99999")
    )
    proc = site.cli("check-config", check=False)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "smtp.port" in err


def test_ack_goes_through_configured_relay(tmp_path: Path) -> None:
    """With an SMTP relay configured, the acknowledgement arrives at the relay, threaded."""
    from tests.support.smtp_sink import SmtpSink  # noqa: PLC0415 - only this test needs it

    with SmtpSink() as sink:
        site = Site(tmp_path)
        site.extra = ""
        site.write()
        text = site.config.read_text().replace(
            "[outgoing]\n",
            f'[outgoing]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\n',
        )
        site.config.write_text(text)
        d = Daemon(site).start()
        try:
            msg = customer_mail("Relay me", "Please answer through the relay.")
            send(site, msg)
            delivered = wait_for(lambda: sink.deliveries)
        finally:
            assert d.stop() == 0
    ack = delivered[0].message()
    assert delivered[0].rcpt_tos == ("alice@customer.example",)
    assert ack["In-Reply-To"] == msg["Message-ID"]
    assert ack["X-Loop"] == "support@example.com"
    assert site.outgoing_messages() == []


def test_starttls_when_certificate_configured(tmp_path: Path) -> None:
    """A configured certificate makes the listener offer STARTTLS, and mail over TLS is accepted."""
    import ssl  # noqa: PLC0415

    import trustme  # noqa: PLC0415

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    site = Site(tmp_path)
    site.write()
    site.config.write_text(
        site.config.read_text().replace(
            "[smtp]\n",
            f'[smtp]\ntls_cert_file = "{tmp_path / "server.pem"}"\nrequire_starttls = true\n',
        )
    )
    d = Daemon(site).start()
    try:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=10) as s:
            s.ehlo()
            assert s.has_extn("starttls")
            s.starttls(context=ctx)
            s.sendmail(
                "alice@customer.example",
                ["support@example.com"],
                customer_mail("TLS", "hi").as_bytes(),
            )
        assert wait_for(lambda: cases_of(site))[0]["subject"] == "TLS"
        with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=10) as s:
            s.ehlo()
            code, _ = s.mail("alice@customer.example")
            assert code == 530  # require_starttls: no mail in the clear
    finally:
        assert d.stop() == 0
