"""The settings of one IMAP mailbox (an ``[[imap]]`` table), shared by its poller and login."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImapSettings:
    """One ``[[imap]]`` mailbox; the field names are the config keys."""

    host: str = ""
    username: str = ""
    name: str = ""  # empty: "host/username/folder"
    port: int = 0  # 0: 993 for tls = "ssl", else 143
    tls: str = "ssl"  # "ssl" | "starttls" | "none"
    tls_verify: bool = True
    tls_ca_file: str = ""
    password: str = field(default="", repr=False)
    oauth2_token_file: str = ""
    oauth2_token_command: str = ""
    folder: str = "INBOX"
    processed: str = "move"  # "move" | "flag"
    processed_folder: str = "Processed"
    idle: bool = True
    poll_interval_seconds: float = 60.0
    max_message_size: int = 25 * 1024 * 1024
    batch_size: int = 100
    # RFC 2177: clients re-issue IDLE at least every 29 minutes; 25 leaves margin.
    idle_timeout_seconds: float = 1500.0
    lease_seconds: float = 60.0

    def __post_init__(self) -> None:
        # Frozen: fill the derived defaults in place once, so every reader sees them.
        if not self.port:
            object.__setattr__(self, "port", 993 if self.tls == "ssl" else 143)
        if not self.name:
            object.__setattr__(self, "name", f"{self.host}/{self.username}/{self.folder}")

    @property
    def uses_oauth2(self) -> bool:
        """Whether the login is XOAUTH2 rather than a password."""
        return bool(self.oauth2_token_file or self.oauth2_token_command)
