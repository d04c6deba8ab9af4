"""The SMTP source: aiosmtpd that commits raw mail before it answers 250."""

from __future__ import annotations

import asyncio
import logging
import ssl
import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any

import structlog
from aiosmtpd.smtp import MISSING, SMTP, syntax

from ingest.sources.smtp_data import END, DataScan, Outcome
from ingest.triage.classify import is_our_address

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiosmtpd.smtp import Envelope, Session

    from ingest.sources.smtp_settings import SmtpSettings

log = structlog.get_logger("mail2case.smtp")
# aiosmtpd's logger: the DATA override logs its "connection lost" line where aiosmtpd does.
aiosmtpd_log = logging.getLogger("mail.log")


def reverse_path(mail_from: str | None) -> str:
    """The envelope sender as stored: "" for the null reverse-path.

    aiosmtpd hands ``MAIL FROM:<>`` over as ``"<>"`` (and needs it non-empty to know
    that MAIL was given); stored as "", it is the "no sender" that RFC 5321 4.5.5 says
    is never answered.
    """
    address = (mail_from or "").strip()
    return "" if address in {"<>", ""} else address


class SupportHandler:
    """aiosmtpd handler: accepts mail for the support addresses only.

    Handlers return SMTP status strings (aiosmtpd's contract) and never raise:
    a failed commit answers 451 so the client keeps the message and retries.
    ``commit`` is awaited: the daemon passes a group commit (ingest.sources.group_commit).
    """

    def __init__(
        self,
        own_addresses: frozenset[str],
        commit: Callable[[bytes, str, list[str]], Awaitable[int]],
        wake: Callable[[], None],
        max_recipients: int,
    ) -> None:
        self.own = own_addresses
        self.commit = commit
        self.wake = wake
        self.max_recipients = max_recipients

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Take the reverse-path; a UTF-8 one needs the SMTPUTF8 parameter (RFC 6531 3.4)."""
        del server, session
        if not address.isascii() and not envelope.smtp_utf8:
            return _NEEDS_SMTPUTF8
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept our own addresses; refuse everything else (550, no relay)."""
        del server, session, rcpt_options
        if not address.isascii() and not envelope.smtp_utf8:
            return _NEEDS_SMTPUTF8
        # Ours, plus-extensions included: no open relay.
        if not is_our_address(address, self.own):
            log.info("smtp.recipient_refused", recipient=address)
            return (
                "550 5.7.1 Relaying denied: this server accepts mail for its support address only"
            )
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Commit the raw bytes and envelope, then (and only then) answer 250."""
        del server, session
        raw = _as_bytes(envelope.original_content or envelope.content)
        try:
            inbound_id = await self.commit(
                raw, reverse_path(envelope.mail_from), list(envelope.rcpt_tos)
            )
        except Exception as exc:  # noqa: BLE001 - any failure to commit must become a 4xx, not a 250
            log.warning(
                "message.commit_failed",
                source="smtp",
                error=type(exc).__name__,
                detail=str(exc)[:200],
            )
            return "451 4.3.0 Temporary failure storing the message, please retry"
        log.info(
            "message.received",
            source="smtp",
            inbound_id=inbound_id,
            size=len(raw),
            mail_from=envelope.mail_from,
        )
        self.wake()
        return f"250 2.0.0 OK: queued as {inbound_id}"


# RFC 6531 3.7.1 gives 553 5.6.7 for a non-ASCII address the transaction did not announce.
_NEEDS_SMTPUTF8 = "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter"


def _as_bytes(content: Any) -> bytes:
    if isinstance(content, bytes):
        return content
    return str(content or "").encode("utf-8", "surrogateescape")


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    """A server TLS context when a certificate is configured, for STARTTLS."""
    if not settings.tls_cert_file:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.tls_cert_file, settings.tls_key_file or None)
    return ctx


class _Gate:
    """Counts open SMTP connections against ``max_connections``, and per client."""

    def __init__(self, limit: int, per_client: int) -> None:
        self.limit = limit
        self.per_client = per_client
        self.open = 0
        self.by_client: Counter[str] = Counter()

    def admit(self, client: str) -> bool:
        """Count a connection from ``client`` in, unless the client holds its share."""
        if self.by_client[client] >= self.per_client:
            return False
        self.by_client[client] += 1
        return True

    def release(self, client: str) -> None:
        """Count a connection from ``client`` out."""
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]


class _CountedSMTP(SMTP):
    """aiosmtpd's SMTP protocol, releasing its place at the gate when the connection ends.

    DATA is aiosmtpd's, read in bulk (``smtp_DATA`` below), written against aiosmtpd
    1.4.6's ``SMTP`` and its internals; pyproject.toml pins ``aiosmtpd>=1.4.6,<1.5`` for
    it. What the override relies on, each item checked by the ``test_smtp_aiosmtpd_*``
    tests of tests/unit/ingest/sources/test_smtp_data.py (they fail loudly when aiosmtpd
    moves), its behaviour compared byte for byte with aiosmtpd's own ``smtp_DATA`` by the
    rest of that file:

    - dispatch: a coroutine method ``smtp_DATA(self, arg: str) -> None`` decorated with
      ``aiosmtpd.smtp.syntax("DATA")`` is what ``SMTP.__init__`` puts in
      ``self._smtp_methods["DATA"]``;
    - methods: ``await self.check_helo_needed()``, ``await
      self.check_auth_needed("DATA")``, ``await self.push(status)``, ``await
      self._call_handler_hook("DATA")``, ``self._set_post_data_state()``;
    - attributes: ``self._reader`` (the ``asyncio.StreamReader`` that ``__init__`` makes
      with ``limit=self.line_length_limit`` and ``_cb_client_connected(reader, writer)``
      stores), ``self._writer`` (``close()``),
      ``self.transport``, ``self.envelope`` (``rcpt_tos``, ``content``,
      ``original_content``, ``mail_from``), ``self.session`` (``peer``),
      ``self.event_handler``, ``self.data_size_limit``, ``SMTP.line_length_limit``
      (1001), ``self.enable_SMTPUTF8``, ``self._decode_data``, ``self._handle_hooks``;
    - names: ``aiosmtpd.smtp.MISSING`` (a hook's "no answer"), the "mail.log" logger;
    - for the connection limits: ``connection_made(transport)`` (the session starts),
      ``data_received(data)`` and ``self._reset_timeout()`` (bytes reset the idle
      timeout), ``eof_received()``, and the constructor's ``command_call_limit``.
    """

    def __init__(self, *args: Any, gate: _Gate, max_session_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = gate
        self._max_session = max_session_seconds
        self._client: str | None = None  # None: refused before the session began
        self._session_timer: asyncio.TimerHandle | None = None
        gate.open += 1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self._gate.admit(client):
            log.warning("smtp.connection_refused", reason="too many connections from client")
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(b"421 4.7.0 Too many connections from your host\r\n")
            transport.close()
            return
        self._client = client
        self._session_timer = asyncio.get_running_loop().call_later(
            self._max_session, self._session_expired
        )
        super().connection_made(transport)

    def _session_expired(self) -> None:
        """The session cap: say so (RFC 5321 3.8) and close, whatever the client is doing."""
        log.info("smtp.session_expired", seconds=self._max_session)
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(b"421 4.4.2 Session time limit reached, closing\r\n")
        if transport is not None:
            transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        self._gate.open -= 1
        if self._client is None:  # refused in connection_made: aiosmtpd never started
            return
        self._gate.release(self._client)
        if self._session_timer is not None:
            self._session_timer.cancel()
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        # The data timeout is an idle timeout: bytes arriving reset it, so a client that
        # keeps sending, however slowly, is not cut off mid-message (aiosmtpd resets it
        # per command only, and DATA is read as one piece). The session cap bounds it.
        if self._client is not None:
            self._reset_timeout()
        super().data_received(data)

    def eof_received(self) -> bool | None:
        if self._client is None:
            return False
        return super().eof_received()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command method name
        """The DATA command as aiosmtpd 1.4.6 runs it, with the data read in bulk.

        aiosmtpd awaits one ``readuntil`` per CRLF-ended line and checks and unstuffs
        each line in Python; here the reader is asked for the dot-CRLF sequence (found
        at C speed, at most the reader's limit per piece) and ``DataScan`` checks the
        limits and finds the terminator per piece. Replies, the state after them and
        the hooks called are aiosmtpd's (tests/unit/ingest/sources/test_smtp_data.py runs both).
        """
        if not await self._data_may_start(arg):
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        scan = await self._read_data()
        if scan is None:  # pragma: no cover - connection_lost cancels this coroutine first
            return
        # Day of reckoning, as aiosmtpd puts it: the limits are answered after the data.
        if scan.outcome is Outcome.TOO_LONG:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            self._post_data_state()
            return
        if scan.outcome is Outcome.TOO_MUCH:
            await self.push("552 Error: Too much mail data")
            self._post_data_state()
            return
        await self._data_received(scan.content())

    async def _data_may_start(self, arg: str) -> bool:
        """The checks aiosmtpd makes before 354, with its replies."""
        if await self.check_helo_needed():
            return False
        if await self.check_auth_needed("DATA"):
            return False
        assert self.envelope is not None  # noqa: S101 - aiosmtpd's own invariant
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return False
        if arg:
            await self.push("501 Syntax: DATA")
            return False
        return True

    async def _read_data(self) -> DataScan | None:
        """Read up to and including the end-of-data line; nothing past it."""
        # aiosmtpd gives its StreamReader ``limit=self.line_length_limit``.
        scan = DataScan(self.data_size_limit, self.line_length_limit, self.line_length_limit)
        reader = self._reader
        while self.transport is not None:
            try:
                try:
                    piece = await reader.readuntil(END)
                except asyncio.LimitOverrunError as overrun:
                    # No dot-CRLF within the reader's limit: take what it searched (it
                    # keeps the last two bytes, so a dot-CRLF split across reads is found).
                    piece = await reader.read(overrun.consumed)
            except asyncio.CancelledError:
                # The connection got reset during the DATA command.
                aiosmtpd_log.info("Connection lost during DATA")
                self._writer.close()
                raise
            if scan.feed(piece):
                return scan
        return None  # pragma: no cover - as above

    async def _data_received(self, original_content: bytes) -> None:
        """The tail of aiosmtpd's DATA: decode if asked, call the DATA hook, answer."""
        assert self.envelope is not None  # noqa: S101 - aiosmtpd's own invariant
        content: str | bytes
        if self._decode_data:
            if self.enable_SMTPUTF8:
                content = original_content.decode("utf-8", errors="surrogateescape")
            else:
                try:
                    content = original_content.decode("ascii", errors="strict")
                except UnicodeDecodeError:
                    await self.push("500 Error: strict ASCII mode")
                    return
        else:
            content = original_content
        self.envelope.content = content
        self.envelope.original_content = original_content

        if "DATA" in self._handle_hooks:
            status = await self._call_handler_hook("DATA")
        else:  # aiosmtpd's backward compatibility: a handler with process_message only
            status = await self._process_message()
        self._post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def _post_data_state(self) -> None:
        self._set_post_data_state()  # type: ignore[no-untyped-call] # aiosmtpd leaves it untyped

    async def _process_message(self) -> Any:
        handler = self.event_handler
        if not hasattr(handler, "process_message"):
            return MISSING
        warnings.warn(
            "Use handler.handle_DATA() instead of .process_message()",
            DeprecationWarning,
            stacklevel=2,
        )
        assert self.session is not None  # noqa: S101 - aiosmtpd's own invariant
        assert self.envelope is not None  # noqa: S101
        args = (
            self.session.peer,
            self.envelope.mail_from,
            self.envelope.rcpt_tos,
            self.envelope.content,
        )
        if asyncio.iscoroutinefunction(handler.process_message):
            status = await handler.process_message(*args)
        else:
            status = handler.process_message(*args)
        return MISSING if status is None else status


class _TooBusy(asyncio.Protocol):
    """Answers a connection past the limit with 421 and closes it (RFC 5321 3.8)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        log.warning("smtp.connection_refused", reason="too many connections")
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(b"421 4.3.2 Too many connections, try again later\r\n")
        transport.close()


async def start_server(settings: SmtpSettings, handler: SupportHandler) -> asyncio.Server:
    """Listen on the configured address in the running loop."""
    context = tls_context(settings)
    loop = asyncio.get_running_loop()
    gate = _Gate(settings.max_connections, settings.max_connections_per_client)

    def factory() -> asyncio.Protocol:
        # Called on accept, in the loop's thread: the count needs no lock.
        if gate.open >= gate.limit:
            return _TooBusy()
        return _CountedSMTP(
            handler,
            gate=gate,
            max_session_seconds=settings.max_session_seconds,
            command_call_limit=settings.max_commands,
            data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True,
            hostname=settings.hostname,
            ident="mail2case ESMTP",
            tls_context=context,
            require_starttls=settings.require_starttls and context is not None,
            timeout=settings.data_timeout_seconds,
            loop=loop,
        )

    server = await loop.create_server(factory, host=settings.host, port=settings.port)
    log.info("smtp.listening", host=settings.host, port=settings.port, starttls=context is not None)
    return server
