"""SQLAlchemy 2.0 typed models: the whole mail2case schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.statuses import InboundStatus, OutboxStatus

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

# Stable constraint names so Alembic migrations work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware-UTC datetimes in, aware-UTC datetimes out (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes: invariant 6 says storage holds aware UTC."""
        del dialect
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to values that the backend returns naive."""
        del dialect
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention and type map."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[dict[str, str]]: JSON(),
    }


class Customer(Base):
    """A customer organisation, mirrored from the ``[[customers]]`` config on use."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]


class Contact(Base):
    """One address that has written to or been copied on a case."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    created_at: Mapped[datetime]


def _raw_row(raw: bytes) -> InboundRaw:
    """The row that holds ``Inbound.raw`` (the association proxy's creator)."""
    return InboundRaw(raw=raw)


class Inbound(Base):
    """Raw mail exactly as received, committed before any acknowledgement (invariant 1)."""

    __tablename__ = "inbound"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(40))
    source_ref: Mapped[str | None] = mapped_column(String(300))
    mail_from: Mapped[str] = mapped_column(String(320), default="")
    rcpt_to: Mapped[list[str]] = mapped_column(default=list)
    size: Mapped[int]
    # An InboundStatus: received (or held, by an import) → processed | duplicate |
    # suppressed | quarantined.
    status: Mapped[str] = mapped_column(String(20), default=InboundStatus.RECEIVED)
    written_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    # While pending: when the current attempt started. Other instances leave the row
    # alone until it is older than the claim period (ingest.analysis.sandbox explains why).
    claimed_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))

    __table_args__ = (
        Index("ix_inbound_status_id", "status", "id"),
        UniqueConstraint("source", "source_ref", name="uq_inbound_source_ref"),
    )

    # The bytes live in a table of their own (InboundRaw): this row's status, attempts
    # and claimed_at are updated at claim and at settle, and SQLite rewrites a whole row
    # on UPDATE, so with the mail in it every message was written three times over.
    raw_row: Mapped[InboundRaw] = relationship(cascade="all, delete-orphan")
    raw: AssociationProxy[bytes] = association_proxy("raw_row", "raw", creator=_raw_row)


class InboundRaw(Base):
    """The bytes of one raw message, written once with its ``Inbound`` row (migration 0005)."""

    __tablename__ = "inbound_raw"

    inbound_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("inbound.id"), primary_key=True
    )
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class Case(Base):
    """A support case: the unit that carries priority, plan and SLA clocks."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[int] = mapped_column(unique=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="open")
    priority: Mapped[str] = mapped_column(String(10))
    priority_reason: Mapped[str] = mapped_column(Text, default="")
    customer_priority: Mapped[str | None] = mapped_column(String(10))
    plan: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    customer_address: Mapped[str] = mapped_column(String(320))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    owner: Mapped[str | None] = mapped_column(String(320))
    # The previous system's ticket number, for threading an imported history.
    external_ref: Mapped[str | None] = mapped_column(String(100), index=True)
    participants: Mapped[list[str]] = mapped_column(default=list)
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_response_due: Mapped[datetime | None]
    first_responded_at: Mapped[datetime | None]
    next_update_due: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    customer: Mapped[Customer | None] = relationship()
    messages: Mapped[list[Message]] = relationship(
        back_populates="case", order_by="Message.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (Index("ix_cases_status_opened", "status", "opened_at"),)


class Message(Base):
    """One message on a case, inbound from a customer or outbound from us."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"))
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    kind: Mapped[str] = mapped_column(String(20), default="customer")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    to_addrs: Mapped[list[str]] = mapped_column(default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str]] = mapped_column(default=list)
    at: Mapped[datetime]
    text: Mapped[str] = mapped_column(Text, default="")
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)

    case: Mapped[Case] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id", cascade="all, delete-orphan"
    )


class Blob(Base):
    """Attachment content, addressed by its SHA-256 (stored once however often sent)."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]
    data: Mapped[bytes | None] = mapped_column(LargeBinary)  # None when kept on disk


class Attachment(Base):
    """An attachment of a message; the filename is for display only."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    is_inline: Mapped[bool] = mapped_column(Boolean, default=False)

    message: Mapped[Message] = relationship(back_populates="attachments")


class CaseEvent(Base):
    """The audit trail: every change to a case, who made it and why."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(320), default="system")
    detail: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    case: Mapped[Case] = relationship(back_populates="events")


class SlaClock(Base):
    """One SLA deadline of a case (first response or next update) and its reminders."""

    __tablename__ = "sla_clocks"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "first" | "update"
    state: Mapped[str] = mapped_column(String(10), default="running")  # running|met|stopped
    started_at: Mapped[datetime]
    due_at: Mapped[datetime]
    remind_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]

    __table_args__ = (
        # The scheduler's passes read only clocks coming due: cost follows those, not open cases.
        Index("ix_sla_clocks_running_remind", "state", "remind_at"),
        Index("ix_sla_clocks_running_due", "state", "due_at"),
    )


class Outbox(Base):
    """A mail to send: template, context and a unique dedupe key (invariant 2)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    # ack | notify | relay | reminder | escalation | signin (the board's sign-in links)
    kind: Mapped[str] = mapped_column(String(20))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    to_addrs: Mapped[list[str]] = mapped_column(default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(default=list)
    # None: the sender's defaults (support name, support address as Reply-To).
    from_name: Mapped[str | None] = mapped_column(String(200))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    # [{"sha256", "filename", "content_type"}]: blobs to attach (relayed agent attachments).
    attachments: Mapped[list[dict[str, str]]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    template: Mapped[str] = mapped_column(String(100))
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message_id: Mapped[str] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str]] = mapped_column(default=list)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    # An OutboxStatus: queued → sent | failed | suppressed (held back by the breaker)
    status: Mapped[str] = mapped_column(String(10), default=OutboxStatus.QUEUED)
    # The first recipient, lower-cased, once sent: per-recipient rate limits read it.
    rcpt_key: Mapped[str | None] = mapped_column(String(320))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_rcpt_sent", "rcpt_key", "sent_at"),
    )


class Suppression(Base):
    """An address no automatic mail goes to until ``until`` (it bounced permanently)."""

    __tablename__ = "suppressions"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    until: Mapped[datetime]


class MailboxState(Base):
    """Where an IMAP mailbox was read up to, and which instance holds its lease."""

    __tablename__ = "mailbox_state"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class PriorityModelRecord(Base):
    """A priority model installed by ``mail2case priority train``: the latest one decides.

    The model is JSON (``ingest.priority.model``), never a pickle; kept in the database
    so that every instance on it classifies alike and SIGHUP picks up a new one.
    """

    __tablename__ = "priority_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    installed_at: Mapped[datetime]
    installed_by: Mapped[str] = mapped_column(String(320), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    examples: Mapped[int]
    site_examples: Mapped[int]
    # Float, not the Double that a bare ``float`` maps to: what the migration made.
    accuracy_before: Mapped[float | None] = mapped_column(Float)
    accuracy_after: Mapped[float | None] = mapped_column(Float)
    # The refs of the site's cases it learned from, with their labels then.
    site_labels: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SigninLink(Base):
    """A one-time sign-in link to the board: issued to an agent, used at most once."""

    __tablename__ = "signin_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the token id the link signs
    address: Mapped[str] = mapped_column(String(320))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    # The per-address rate limit counts an address's links issued in the last hour.
    __table_args__ = (Index("ix_signin_links_address_issued", "address", "issued_at"),)


class Counter(Base):
    """Named counters, such as the next case reference."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int]


def utcnow() -> datetime:
    """The current time as aware UTC; only edge code calls this."""
    return datetime.now(UTC)
