"""Transports against a real maildir and a real aiosmtpd relay on 127.0.0.1."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword

from notifications.errors import PermanentTransportError, TemporaryTransportError
from notifications.transports import MaildirTransport, SmtpTransport
from tests.support.services import free_port
from tests.support.smtp_sink import HOST, SinkHandler, SmtpSink

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PASSWORD = "s3cret-Pa55word"


def make_message(subject: str = "Hello") -> EmailMessage:
    """A small mail as the sender would hand over."""
    msg = EmailMessage()
    msg["From"] = "support@example.com"
    msg["To"] = "ann@customer.example"
    msg["Subject"] = subject
    msg["Message-ID"] = "<t.1@example.com>"
    msg.set_content("Body text.\n")
    return msg


def smtp(sink: SmtpSink, **kwargs: Any) -> SmtpTransport:
    """A plain SMTP transport pointed at ``sink``."""
    options: dict[str, Any] = {"starttls": False, "timeout": 5.0} | kwargs
    return SmtpTransport(sink.host, sink.port, **options)


def send(transport: SmtpTransport | MaildirTransport, *to: str) -> None:
    """Send the standard message to ``to`` (default: one customer)."""
    recipients = list(to) or ["ann@customer.example"]
    transport.send(make_message(), from_addr="support@example.com", to_addrs=recipients)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A plain aiosmtpd sink."""
    with SmtpSink() as running:
        yield running


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture
def tls_sink(ca: trustme.CA) -> Iterator[SmtpSink]:
    """A sink that requires STARTTLS and AUTH, with a certificate for 127.0.0.1."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server_ctx)
    with SmtpSink(
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=check_password,
        auth_require_tls=True,
    ) as running:
        yield running


def check_password(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    """Accept agent/PASSWORD only (an aiosmtpd authenticator)."""
    del server, session, envelope, mechanism
    is_ok = isinstance(auth_data, LoginPassword) and auth_data == (b"agent", PASSWORD.encode())
    # handled=False on failure: aiosmtpd then answers 535 itself (True means "already did").
    return AuthResult(success=is_ok, handled=False, auth_data=auth_data if is_ok else None)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts only the throwaway CA."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_maildir_delivers_one_file_into_new(tmp_path: Path) -> None:
    """A mail becomes exactly one file in new/ holding its bytes, and tmp/ is left empty."""
    maildir = tmp_path / "outgoing"
    msg = make_message()
    MaildirTransport(maildir).send(msg, from_addr="support@example.com", to_addrs=["a@b.example"])
    files = list((maildir / "new").iterdir())
    assert len(files) == 1
    assert files[0].read_bytes() == msg.as_bytes()
    assert list((maildir / "tmp").iterdir()) == []
    assert (maildir / "cur").is_dir()


def test_maildir_names_are_unique(tmp_path: Path) -> None:
    """Many mails in a row never overwrite each other."""
    transport = MaildirTransport(tmp_path)
    for _ in range(20):
        send(transport)
    assert len(list((tmp_path / "new").iterdir())) == 20


def test_maildir_that_cannot_be_created_is_temporary(tmp_path: Path) -> None:
    """A maildir path blocked by a file is a temporary error (fixable without losing mail)."""
    blocker = tmp_path / "blocked"
    blocker.write_text("not a directory", encoding="utf-8")
    with pytest.raises(TemporaryTransportError, match="maildir"):
        send(MaildirTransport(blocker))


def test_smtp_delivers_with_envelope(sink: SmtpSink) -> None:
    """The relay receives the mail with our envelope sender and recipients."""
    send(smtp(sink), "ann@customer.example", "bob@customer.example")
    (delivery,) = sink.deliveries
    assert delivery.mail_from == "support@example.com"
    assert delivery.rcpt_tos == ("ann@customer.example", "bob@customer.example")
    assert delivery.message()["Subject"] == "Hello"
    assert not delivery.is_tls


def test_smtp_starttls_and_login(tls_sink: SmtpSink, ca: trustme.CA) -> None:
    """With STARTTLS and credentials the mail goes over TLS, authenticated."""
    transport = smtp(
        tls_sink,
        starttls=True,
        ssl_context=client_context(ca),
        username="agent",
        password=PASSWORD,
    )
    send(transport)
    (delivery,) = tls_sink.deliveries
    assert delivery.is_tls
    assert delivery.login == "agent"


def test_smtp_wrong_password_is_temporary_and_not_echoed(
    tls_sink: SmtpSink, ca: trustme.CA
) -> None:
    """A refused login holds the outbox (temporary) and the error never shows the password."""
    transport = smtp(
        tls_sink,
        starttls=True,
        ssl_context=client_context(ca),
        username="agent",
        password="nope",
    )
    with pytest.raises(TemporaryTransportError) as caught:
        send(transport)
    assert caught.value.smtp_code == 535
    assert "nope" not in str(caught.value)
    assert "nope" not in repr(caught.value)
    assert tls_sink.deliveries == []


def test_smtp_untrusted_certificate_is_refused(tls_sink: SmtpSink) -> None:
    """STARTTLS verifies the relay's certificate: an unknown CA means no delivery."""
    transport = smtp(tls_sink, starttls=True, ssl_context=ssl.create_default_context())
    with pytest.raises(TemporaryTransportError, match="SSL"):
        send(transport)
    assert tls_sink.deliveries == []


def test_smtp_starttls_missing_on_server_fails(sink: SmtpSink) -> None:
    """A relay that does not offer STARTTLS is not used in clear when TLS is configured."""
    with pytest.raises(TemporaryTransportError, match="STARTTLS"):
        send(smtp(sink, starttls=True))
    assert sink.deliveries == []


def test_smtp_4xx_at_data_is_temporary(sink: SmtpSink) -> None:
    """451 at DATA is a temporary error carrying the code and text."""
    sink.handler.data_reply = "451 4.3.0 Try again later"
    with pytest.raises(TemporaryTransportError) as caught:
        send(smtp(sink))
    assert caught.value.smtp_code == 451
    assert caught.value.smtp_error is not None
    assert "Try again later" in caught.value.smtp_error


def test_smtp_5xx_at_data_is_permanent(sink: SmtpSink) -> None:
    """554 at DATA is a permanent error carrying the code."""
    sink.handler.data_reply = "554 5.6.0 Content rejected"
    with pytest.raises(PermanentTransportError) as caught:
        send(smtp(sink))
    assert caught.value.smtp_code == 554


def test_smtp_all_recipients_refused_permanently(sink: SmtpSink) -> None:
    """5xx for every recipient is permanent."""
    sink.handler.rcpt_replies["ann@customer.example"] = "550 5.1.1 No such user"
    with pytest.raises(PermanentTransportError) as caught:
        send(smtp(sink))
    assert caught.value.smtp_code == 550


def test_smtp_mixed_refusals_are_temporary() -> None:
    """When one refusal is 4xx and none accepted, retrying may still reach that recipient."""
    handler = SinkHandler(
        rcpt_replies={"a@x.example": "550 5.1.1 No such user", "b@x.example": "450 4.2.1 Busy"}
    )
    with SmtpSink(handler) as sink, pytest.raises(TemporaryTransportError) as caught:
        send(smtp(sink), "a@x.example", "b@x.example")
    assert caught.value.smtp_code == 450


def test_smtp_partial_refusal_counts_as_sent(sink: SmtpSink) -> None:
    """Some recipients accepted: no error, since a retry would duplicate the mail for them."""
    sink.handler.rcpt_replies["gone@customer.example"] = "550 5.1.1 No such user"
    send(smtp(sink), "ann@customer.example", "gone@customer.example")
    (delivery,) = sink.deliveries
    assert delivery.rcpt_tos == ("ann@customer.example",)


def test_smtp_connection_refused_is_temporary() -> None:
    """Nobody listening is a temporary error."""
    transport = SmtpTransport(HOST, free_port(), starttls=False, timeout=5.0)
    with pytest.raises(TemporaryTransportError, match="relay"):
        send(transport)


def test_smtp_repr_hides_the_password() -> None:
    """repr() of a transport never shows its password."""
    transport = SmtpTransport(HOST, 25, starttls=True, username="agent", password=PASSWORD)
    assert PASSWORD not in repr(transport)
    assert "agent" in repr(transport)


def test_smtp_starttls_and_ssl_exclude_each_other() -> None:
    """Asking for both implicit TLS and STARTTLS is a configuration error."""
    with pytest.raises(ValueError, match="exclude"):
        SmtpTransport(HOST, 465, starttls=True, ssl=True)
