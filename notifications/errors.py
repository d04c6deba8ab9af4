"""Errors of outgoing mail, named for what the sender does about them.

::

    NotificationError
    ├── RenderError                  a template or header value cannot make a mail: fail the row
    └── TransportError               the mail could not be handed over
        ├── TemporaryTransportError  relay unreachable, timeout, TLS or login trouble, 4xx: retry
        └── PermanentTransportError  5xx to the message (all recipients refused): fail the row

Transport errors carry the SMTP reply code and text when the relay gave one. No error
ever carries a password: only the server's reply and our own description go in.
"""

from __future__ import annotations


class NotificationError(Exception):
    """Base of every error raised by the notifications package."""


class RenderError(NotificationError):
    """A template could not be rendered into a mail (missing, broken or given bad context)."""

    def __init__(self, reason: str, *, template: str) -> None:
        super().__init__(f"{template}: {reason}")
        self.reason = reason
        self.template = template


class TransportError(NotificationError):
    """A mail could not be handed to its destination."""

    def __init__(
        self, reason: str, *, smtp_code: int | None = None, smtp_error: str | None = None
    ) -> None:
        detail = f" ({smtp_code} {smtp_error})" if smtp_code is not None else ""
        super().__init__(f"{reason}{detail}")
        self.reason = reason
        self.smtp_code = smtp_code
        self.smtp_error = smtp_error


class TemporaryTransportError(TransportError):
    """Worth retrying later: the relay was unreachable, slow, or answered 4xx."""


class PermanentTransportError(TransportError):
    """Retrying will not help: the relay refused this message with 5xx."""
