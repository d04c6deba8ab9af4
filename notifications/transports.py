"""Transports that hand a rendered mail over: a local maildir or an SMTP relay."""

from __future__ import annotations

import os
import secrets
import smtplib
import socket
import ssl
import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from notifications.errors import (
    PermanentTransportError,
    TemporaryTransportError,
    TransportError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from email.message import EmailMessage
    from pathlib import Path


_PERMANENT_CLASS = 5  # the first digit of a permanent negative SMTP reply


class Transport(Protocol):
    """Something that takes responsibility for delivering a mail, or raises."""

    def send(self, msg: EmailMessage, *, from_addr: str, to_addrs: Sequence[str]) -> None:
        """Deliver ``msg``; return only once the destination has taken responsibility.

        Raises:
            TemporaryTransportError: try again later.
            PermanentTransportError: this mail will never be accepted.
        """
        ...


@runtime_checkable
class SettlingTransport(Transport, Protocol):
    """A transport whose deliveries of one batch become durable together, at ``settle``.

    ``send`` hands the mail over, but the destination holds it for good only once
    ``settle`` has returned: whoever records a mail as sent calls ``settle`` first.
    """

    def settle(self) -> None:
        """Make every mail handed over since the last ``settle`` durable.

        Raises:
            TemporaryTransportError: those mails may be lost; send them again later.
        """
        ...


class MaildirTransport:
    """Delivers into a maildir, durably: tmp/ → fsync → rename into new/ → fsync new/.

    Written by hand rather than with :mod:`mailbox`, which never fsyncs: a mail the
    sender has marked sent must survive a power cut. The file holds the message bytes
    exactly; the envelope is not recorded (the recipients are in To/Cc). Each file is
    written and fsynced by ``send``; the renames into ``new/`` are made durable by one
    fsync of ``new/`` in ``settle``, for all the mails of a batch at once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._is_unsettled = False  # a rename into new/ that no fsync of new/ covers yet
        self._has_folders = False

    def __repr__(self) -> str:
        return f"MaildirTransport({str(self.path)!r})"

    def send(self, msg: EmailMessage, *, from_addr: str, to_addrs: Sequence[str]) -> None:
        """Write ``msg`` as one new file in ``new/``; never a partial file there.

        The file is durable when this returns; its name in ``new/`` once ``settle`` has.
        """
        del from_addr, to_addrs
        try:
            self._make_folders()
            name = _unique_name()
            tmp, new = self.path / "tmp" / name, self.path / "new" / name
            _write_durably(tmp, msg.as_bytes())
            tmp.rename(new)
            self._is_unsettled = True
        except OSError as exc:  # disk full, permissions: may clear up; the row retries
            self._has_folders = False
            raise TemporaryTransportError(f"maildir {self.path}: {exc}") from exc

    def settle(self) -> None:
        """Fsync ``new/`` once for every rename into it since the last call (none: no fsync)."""
        if not self._is_unsettled:
            return
        try:
            _fsync_dir(self.path / "new")
        except OSError as exc:
            raise TemporaryTransportError(f"maildir {self.path}: {exc}") from exc
        self._is_unsettled = False

    def _make_folders(self) -> None:
        # Made once, not per mail; after a failed write (a folder removed under the
        # daemon, say) they are made again before the next.
        if self._has_folders:
            return
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self._has_folders = True


def _unique_name() -> str:
    # The maildir convention: time, then something unique on this host, then the host.
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    return f"{time.time_ns() // 1000}.M{secrets.token_hex(8)}P{os.getpid()}.{host}"


def _write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename into ``path`` durable (POSIX keeps renames in the directory's data)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SmtpTransport:
    """Submits each mail over a fresh SMTP connection to a relay.

    One connection per mail: the sender sends in bursts separated by idle polls, and a
    kept connection would mostly be one the relay has already timed out. Failures while
    connecting, in TLS or at login are temporary whatever their code: they say nothing
    about the mail, and the outbox should hold until the relay or its settings are fixed.
    Replies to the mail itself are temporary for 4xx and permanent for 5xx. A mail that
    some but not all recipients accepted counts as sent: retrying would duplicate it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool,
        ssl: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if starttls and ssl:
            raise ValueError("starttls and ssl exclude each other")
        self.host, self.port = host, port
        self.is_starttls, self.is_ssl = starttls, ssl
        self.username = username
        self._password = password
        self.timeout = timeout
        self._ssl_context = ssl_context
        self.local_hostname = local_hostname

    def __repr__(self) -> str:
        # The password is deliberately absent.
        return (
            f"SmtpTransport({self.host!r}, {self.port}, starttls={self.is_starttls}, "
            f"ssl={self.is_ssl}, username={self.username!r})"
        )

    def send(self, msg: EmailMessage, *, from_addr: str, to_addrs: Sequence[str]) -> None:
        """Submit ``msg`` for ``to_addrs`` with ``from_addr`` as the envelope sender."""
        smtp = self._connect()
        try:
            _transmit(smtp, msg, from_addr, to_addrs)
        finally:
            _close_quietly(smtp)

    def _connect(self) -> smtplib.SMTP:
        try:
            smtp = self._open()
        except (smtplib.SMTPException, OSError) as exc:
            raise _connection_error(self, exc) from exc
        try:
            self._secure_and_login(smtp)
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise _connection_error(self, exc) from exc
        return smtp

    def _open(self) -> smtplib.SMTP:
        if self.is_ssl:
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self._context(),
            )
        return smtplib.SMTP(
            self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
        )

    def _secure_and_login(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo()
        if self.is_starttls:
            # Checked here, not left to smtplib, so the error says what is wrong.
            if not smtp.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError("the relay does not offer STARTTLS")
            smtp.starttls(context=self._context())
            smtp.ehlo()
        if self.username is not None:
            smtp.login(self.username, self._password or "")

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()


def _connection_error(
    transport: SmtpTransport, exc: smtplib.SMTPException | OSError
) -> TemporaryTransportError:
    where = f"relay {transport.host}:{transport.port}: {type(exc).__name__}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return TemporaryTransportError(
            where, smtp_code=exc.smtp_code, smtp_error=_decode(exc.smtp_error)
        )
    return TemporaryTransportError(f"{where}: {exc}")


def _error_for(code: int) -> type[TransportError]:
    """RFC 5321 4.2.1: 5yz replies are permanent; 4yz and anything unexpected may pass."""
    return PermanentTransportError if code // 100 == _PERMANENT_CLASS else TemporaryTransportError


def _close_quietly(smtp: smtplib.SMTP) -> None:
    # The mail is accepted or refused by now: a failing QUIT must not change the verdict.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


def _transmit(
    smtp: smtplib.SMTP, msg: EmailMessage, from_addr: str, to_addrs: Sequence[str]
) -> None:
    try:
        smtp.send_message(msg, from_addr=from_addr, to_addrs=list(to_addrs))
    except smtplib.SMTPRecipientsRefused as exc:
        # Ordered so that a temporary refusal, if any, decides: nobody got the mail, and
        # the recipient that may accept it later must get it.
        refusals = sorted(
            exc.recipients.values(), key=lambda r: _error_for(r[0]) is PermanentTransportError
        )
        code, reply = refusals[0] if refusals else (None, b"")
        error = _error_for(code) if code is not None else TemporaryTransportError
        raise error("all recipients refused", smtp_code=code, smtp_error=_decode(reply)) from exc
    except smtplib.SMTPResponseException as exc:
        error = _error_for(exc.smtp_code)
        raise error(
            "relay refused the mail", smtp_code=exc.smtp_code, smtp_error=_decode(exc.smtp_error)
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:  # disconnected, timed out mid-transaction
        raise TemporaryTransportError(f"relay: {type(exc).__name__}: {exc}") from exc


def _decode(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
