"""The ``Mailbox`` protocol the IMAP poller drives, and its imapclient implementation.

Errors raised by every ``Mailbox`` (both transient: the poller closes, backs off, retries)::

    MailboxError            the connection, the server or the protocol failed
    └── MailboxLoginError   the server refused the credentials, or no token could be had
"""

from __future__ import annotations

import ssl
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from ingest.sources.imap_settings import ImapSettings

INGESTED_FLAG = b"$Mail2caseIngested"
TOO_LARGE_FLAG = b"$Mail2caseTooLarge"
SEEN_FLAG = b"\\Seen"
DELETED_FLAG = b"\\Deleted"
# idle_check returning nothing well before its timeout means the socket hit EOF:
# imapclient swallows that EOF, so without this check a dead connection spins.
_EARLY_SHARE = 0.5


class MailboxError(Exception):
    """A transient failure talking to the mailbox; ``reason`` says what happened."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MailboxLoginError(MailboxError):
    """The server refused the login, or the OAuth2 token could not be obtained."""


class Mailbox(Protocol):
    """One connection to one IMAP folder, as the poller needs it (blocking calls)."""

    def connect(self) -> None:
        """Open the connection (TLS as configured) and log in."""

    def select(self, folder: str) -> tuple[int, int]:
        """Select ``folder``; returns ``(uidvalidity, uidnext)``."""
        ...

    def unprocessed(self, above_uid: int) -> list[int]:
        """UIDs above ``above_uid`` that are neither processed nor set aside, ascending."""
        ...

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID that still exists."""
        ...

    def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The raw bytes of each UID (BODY.PEEK[], so the Seen flag is left alone)."""
        ...

    def mark_processed(self, uids: Sequence[int]) -> None:
        """Move the messages to the processed folder, or flag them, as configured."""

    def mark_too_large(self, uids: Sequence[int]) -> None:
        """Flag messages that exceed the size limit, so they are not fetched again."""

    def folders(self) -> list[str]:
        """Every folder name on the account."""
        ...

    def has_idle(self) -> bool:
        """Whether the server offers IDLE (RFC 2177)."""
        ...

    def idle_start(self) -> None:
        """Enter IDLE."""

    def idle_wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds in IDLE; True when new mail was announced."""
        ...

    def idle_done(self) -> None:
        """Leave IDLE."""

    def noop(self) -> None:
        """A NOOP, to keep the connection alive or notice that it is gone."""

    def logout(self) -> None:
        """Log out and close; never raises."""


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn imapclient and socket errors into the protocol's two error types."""
    try:
        yield
    except LoginError as exc:
        raise MailboxLoginError(f"{what}: {_reason(exc)}") from exc
    except (IMAPClientError, OSError) as exc:  # ssl.SSLError and timeouts are OSErrors
        raise MailboxError(f"{what}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith(("b'", 'b"')):  # imapclient passes server bytes through str()
        text = text[2:-1]
    return text or type(exc).__name__


def uid_set(uids: Iterable[int]) -> str:
    """An IMAP sequence set of exactly ``uids``, runs collapsed (``3:7,9``), for one command.

    Only consecutive UIDs become a range, so a range never takes in a UID outside ``uids``
    (one set aside as too large, say); a chunk of new mail is mostly one range.
    """
    ordered = sorted(set(uids))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def tls_context(settings: ImapSettings) -> ssl.SSLContext:
    """A client TLS context: system trust or ``tls_ca_file``, verification optional."""
    ctx = ssl.create_default_context(cafile=settings.tls_ca_file or None)
    if not settings.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ImapClientMailbox:
    """The ``Mailbox`` protocol over imapclient; the poller calls it from a worker thread."""

    def __init__(
        self,
        settings: ImapSettings,
        oauth2_token: Callable[[], str] | None = None,
        *,
        timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self._oauth2_token = oauth2_token
        self._timeout = timeout
        self._client: IMAPClient | None = None
        self._has_processed_folder = False
        self._has_idle = False

    @property
    def client(self) -> IMAPClient:
        """The connected client."""
        if self._client is None:
            raise MailboxError("not connected")
        return self._client

    def connect(self) -> None:
        """Open the connection (TLS as configured) and log in."""
        s = self.settings
        ctx = tls_context(s) if s.tls != "none" else None
        with _translated(f"connect {s.host}:{s.port}"):
            client = IMAPClient(
                s.host, port=s.port, ssl=s.tls == "ssl", ssl_context=ctx, timeout=self._timeout
            )
        try:
            if s.tls == "starttls":
                with _translated("STARTTLS"):
                    client.starttls(ctx)
            self._login(client)
            # Asked once here: a CAPABILITY round trip just before IDLE could swallow an
            # EXISTS that IDLE would then never announce.
            with _translated("capability"):
                self._has_idle = bool(client.has_capability("IDLE"))
        except BaseException:
            _shutdown(client)
            raise
        self._client = client

    def _login(self, client: IMAPClient) -> None:
        s = self.settings
        if self._oauth2_token is not None:
            token = self._oauth2_token()
            with _translated("XOAUTH2 login"):
                client.oauth2_login(s.username, token)
            return
        with _translated("login"):
            client.login(s.username, s.password)

    def select(self, folder: str) -> tuple[int, int]:
        """Select ``folder``; returns ``(uidvalidity, uidnext)``."""
        with _translated(f"select {folder}"):
            resp = self.client.select_folder(folder)
        return int(resp[b"UIDVALIDITY"]), int(resp.get(b"UIDNEXT", 0))

    def unprocessed(self, above_uid: int) -> list[int]:
        """UIDs above ``above_uid`` that are neither processed nor set aside, ascending."""
        criteria: list[str | bytes] = ["UID", f"{above_uid + 1}:*", "UNDELETED"]
        criteria += ["NOT", "KEYWORD", TOO_LARGE_FLAG]
        if self.settings.processed == "flag":
            criteria += ["NOT", "KEYWORD", INGESTED_FLAG]
        with _translated("search"):
            found = self.client.search(criteria)
        # "n:*" always matches the highest UID, even one below n (RFC 3501 6.4.8).
        return sorted(int(u) for u in found if int(u) > above_uid)

    def every_uid(self) -> list[int]:
        """Every UID in the selected folder, ascending (for importing a history)."""
        with _translated("search"):
            found = self.client.search(["ALL"])
        return sorted(int(u) for u in found)

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID that still exists."""
        if not uids:
            return {}
        with _translated("fetch sizes"):
            resp = self.client.fetch(list(uids), ["RFC822.SIZE"])
        return {int(uid): int(data[b"RFC822.SIZE"]) for uid, data in resp.items()}

    def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The raw bytes of each UID (BODY.PEEK[], so the Seen flag is left alone)."""
        if not uids:
            return {}
        with _translated("fetch"):
            resp = self.client.fetch(list(uids), ["BODY.PEEK[]"])
        return {int(uid): bytes(data[b"BODY[]"]) for uid, data in resp.items()}

    def mark_processed(self, uids: Sequence[int]) -> None:
        """Move the messages to the processed folder, or flag them, as configured.

        One command for the whole set (UID MOVE, or UID STORE), however many there are.
        """
        if not uids:
            return
        if self.settings.processed == "flag":
            with _translated("flag processed"):
                self.client.add_flags(uid_set(uids), [INGESTED_FLAG, SEEN_FLAG], silent=True)
            return
        self._ensure_processed_folder()
        with _translated(f"move to {self.settings.processed_folder}"):
            self._move(uid_set(uids), self.settings.processed_folder)

    def _move(self, uids: str, folder: str) -> None:
        client = self.client
        if client.has_capability("MOVE"):
            client.move(uids, folder)
            return
        # No MOVE (RFC 6851): copy, then delete only these UIDs where UIDPLUS allows it.
        client.copy(uids, folder)
        client.add_flags(uids, [DELETED_FLAG], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            client.expunge()

    def _ensure_processed_folder(self) -> None:
        if self._has_processed_folder:
            return
        folder = self.settings.processed_folder
        with _translated(f"create {folder}"):
            if not self.client.folder_exists(folder):
                try:
                    self.client.create_folder(folder)
                except IMAPClientError:
                    # Another instance (or a person) may have created it meanwhile.
                    if not self.client.folder_exists(folder):
                        raise
        self._has_processed_folder = True

    def mark_too_large(self, uids: Sequence[int]) -> None:
        """Flag messages that exceed the size limit, so they are not fetched again."""
        if uids:
            with _translated("flag too large"):
                self.client.add_flags(uid_set(uids), [TOO_LARGE_FLAG], silent=True)

    def folders(self) -> list[str]:
        """Every folder name on the account."""
        with _translated("list folders"):
            return [str(name) for _flags, _sep, name in self.client.list_folders()]

    def has_idle(self) -> bool:
        """Whether the server offers IDLE (RFC 2177)."""
        return self._has_idle

    def idle_start(self) -> None:
        """Enter IDLE."""
        with _translated("idle"):
            self.client.idle()

    def idle_wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds in IDLE; True when new mail was announced."""
        started = time.monotonic()
        with _translated("idle"):
            responses = self.client.idle_check(timeout=timeout)
        if any(r[0] == b"BYE" for r in responses if isinstance(r, tuple) and r):
            raise MailboxError("idle: server said BYE")
        if not responses and time.monotonic() - started < timeout * _EARLY_SHARE:
            raise MailboxError("idle: connection closed")
        return any(isinstance(r, tuple) and len(r) > 1 and r[1] == b"EXISTS" for r in responses)

    def idle_done(self) -> None:
        """Leave IDLE."""
        with _translated("idle done"):
            self.client.idle_done()

    def noop(self) -> None:
        """A NOOP, to keep the connection alive or notice that it is gone."""
        with _translated("noop"):
            self.client.noop()

    def logout(self) -> None:
        """Log out and close; never raises."""
        client, self._client = self._client, None
        self._has_processed_folder = False
        if client is None:
            return
        try:
            client.logout()
        except (IMAPClientError, OSError):
            _shutdown(client)


def _shutdown(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except (IMAPClientError, OSError):
        return
