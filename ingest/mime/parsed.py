"""Value types for a parsed message: what the pure core hands from parsing onwards."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime
    from email.message import EmailMessage


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox from an address header; ``addr`` keeps the sender's spelling."""

    name: str
    addr: str

    @property
    def key(self) -> str:
        """The address lower-cased, for comparisons and lookups."""
        return self.addr.lower()

    @property
    def domain(self) -> str:
        """The lower-cased domain part, or '' when there is none."""
        return self.addr.rpartition("@")[2].lower() if "@" in self.addr else ""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A non-body MIME part. ``filename`` is a display name only, never a path."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)
    is_inline: bool = False
    content_id: str | None = None

    @property
    def size(self) -> int:
        """Size of the decoded content in bytes."""
        return len(self.data)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the decoded content: the content address in storage."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """Everything the core needs from one RFC 5322 message, decoded.

    Message-IDs are normalised to ``<local@domain>`` form. ``headers`` keeps
    every top-level header (decoded to str) in order, for the classifier.
    ``content_key`` identifies the message independent of trace headers added
    in transit, so that the same mail delivered twice is recognised.
    """

    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    date: datetime | None
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]
    content_type: str
    content_key: str
    defects: tuple[str, ...] = ()
    tree: EmailMessage | None = field(default=None, compare=False, repr=False)
    # The headers' values by lower-cased name: the classifier asks for about 35 headers
    # of each message, and a scan of all of them for each cost more than the index.
    _by_name: dict[str, list[str]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_name: dict[str, list[str]] = {}
        for key, value in self.headers:
            by_name.setdefault(key.lower(), []).append(value)
        object.__setattr__(self, "_by_name", by_name)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        found = self._by_name.get(name.lower())
        return found[0] if found else None

    def header_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        return list(self._by_name.get(name.lower(), ()))
