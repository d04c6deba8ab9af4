"""A real SMTP sink for tests: aiosmtpd on 127.0.0.1 that keeps what it is sent.

Use it as a context manager::

    with SmtpSink() as sink:  # from tests.support.smtp_sink
        smtplib.SMTP(sink.host, sink.port).sendmail(...)
        assert sink.deliveries[0].message()["Subject"] == ...

``sink.handler.data_reply = "451 4.3.0 try later"`` makes it refuse at DATA;
``sink.handler.rcpt_replies["x@example.com"] = "550 5.1.1 no"`` refuses one recipient.
Extra keyword arguments go to aiosmtpd's SMTP (``tls_context``, ``require_starttls``,
``authenticator``, ``auth_require_tls``...).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any, Self

from aiosmtpd.controller import Controller

from tests.support.services import free_port

if TYPE_CHECKING:
    from email.message import EmailMessage
    from types import TracebackType

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Delivery:
    """One mail the sink accepted, with its envelope."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    is_tls: bool
    login: str | None

    def message(self) -> EmailMessage:
        """The mail parsed with the default policy."""
        return BytesParser(policy=policy.default).parsebytes(self.data)


@dataclass
class SinkHandler:
    """aiosmtpd handler: replies as configured, keeps every accepted mail."""

    data_reply: str = "250 OK"
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        """Refuse the recipients listed in ``rcpt_replies``, accept the rest."""
        del server, session, rcpt_options
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        """Keep the mail and answer 250, or answer ``data_reply`` and keep nothing."""
        del server
        if not self.data_reply.startswith("250"):
            return self.data_reply
        auth = session.auth_data  # aiosmtpd's LoginPassword after a successful AUTH
        login = auth.login.decode() if auth is not None else None
        delivery = Delivery(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=envelope.content,
            is_tls=session.ssl is not None,
            login=login,
        )
        with self._lock:
            self.deliveries.append(delivery)
        return "250 OK"


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 and a free port, running in its own thread."""

    def __init__(self, handler: SinkHandler | None = None, **smtp_kwargs: Any) -> None:
        self.handler = handler or SinkHandler()
        self.host = HOST
        self.port = free_port()
        self._controller = Controller(
            self.handler, hostname=self.host, port=self.port, ready_timeout=5.0, **smtp_kwargs
        )

    @property
    def deliveries(self) -> list[Delivery]:
        """Accepted mails, oldest first."""
        return list(self.handler.deliveries)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()
