"""The SMTP listener's settings, apart from the listener: reading a config needs no aiosmtpd."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SmtpSettings:
    """The listener: address, limits, and optional STARTTLS."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2525
    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 100
    tls_cert_file: str = ""
    tls_key_file: str = ""
    require_starttls: bool = False
    hostname: str = "mail2case"
    # aiosmtpd's only timeout: a connection idle this long between reads is closed.
    data_timeout_seconds: float = 300.0
    # Past this many open connections a new one is answered 421 and closed.
    max_connections: int = 100
    # One client (IP address) may hold this many of them: one host cannot take all. Keep it
    # above the concurrency of an MTA in front (Postfix delivers over up to 20 at once).
    max_connections_per_client: int = 50
    # A session lasts this long at most, however busy (NOOP every few seconds resets
    # the idle timeout for ever); then 421. An MTA reconnects and goes on.
    max_session_seconds: float = 900.0
    # Each command at most this many times per session (aiosmtpd's command_call_limit).
    max_commands: int = 1000
