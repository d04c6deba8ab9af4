"""Prometheus metrics of one daemon process: counters fed by log events, gauges read from the DB.

Instrumentation points are the canonical log events the edges already emit (one line per
received message, sent mail, queued reminder...): a structlog processor turns each into a
counter increment, so the edge modules stay free of metrics code. The process stage's
outcomes and timings are observed by the composition root around ``Processor.handle``.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.exc import SQLAlchemyError

from ingest.agents.mail import Action
from ingest.triage.classify import Kind
from storage import inbound, stats
from storage.statuses import InboundStatus
from storage.write_queue import wal_bytes

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, MutableMapping

    from prometheus_client.metrics_core import Metric
    from sqlalchemy.orm import Session, sessionmaker

    from ingest.outcome import Outcome
    from ingest.process import Processor

    EventTap = Callable[[str, dict[str, Any]], None]

# Suppression reasons start with the classification kind or the agent action
# ("auto_reply: ...", "rate_limited: ..."); anything else is "other", so the label set
# stays bounded whatever a message says.
SUPPRESSION_KINDS = frozenset({k.value for k in Kind} | {a.value for a in Action})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def suppression_kind(reason: str | None) -> str:
    """The bounded label for a suppression reason."""
    head = (reason or "").partition(":")[0].strip()
    return head if head in SUPPRESSION_KINDS else "other"


class Metrics:
    """Every metric of one daemon, in a registry of its own (tests run several daemons)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._counters()
        self.processing_seconds = Histogram(
            "mail2case_message_processing_seconds",
            "Time to process one raw message (parse, classify, store, queue replies)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def _counters(self) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"mail2case_{name}", doc, labels, registry=self.registry)

        self.received = counter("messages_received", "Raw messages committed", ("source",))
        self.processed = counter(
            "messages_processed", "Raw messages settled by the process stage", ("outcome",)
        )
        self.suppressed = counter(
            "messages_suppressed", "Messages that opened no case, by kind", ("reason",)
        )
        self.quarantined = counter("messages_quarantined", "Messages set aside for a human")
        self.cases_opened = counter("cases_opened", "Cases opened", ("plan", "priority"))
        self.outbox_sent = counter("outbox_sent", "Outgoing mails handed to the transport")
        self.outbox_failed = counter("outbox_failed", "Outgoing mails given up on")
        self.outbox_retries = counter("outbox_retries", "Outgoing mail attempts to retry later")
        self.sla_reminders = counter("sla_reminders", "SLA reminders queued")
        self.sla_breaches = counter("sla_breaches", "SLA deadlines missed (escalations queued)")
        self.db_errors = counter("database_errors", "Database errors seen, by event", ("event",))
        self.reloads = counter("config_reloads", "SIGHUP reloads, by result", ("result",))

    def observe_outcome(
        self, outcome: Outcome, seconds: float, opened: tuple[str, str] | None = None
    ) -> None:
        """Count one processed message; ``opened`` is the new case's (plan, priority)."""
        self.processed.labels(outcome=outcome.status).inc()
        self.processing_seconds.observe(seconds)
        if outcome.status == InboundStatus.SUPPRESSED:
            self.suppressed.labels(reason=suppression_kind(outcome.reason)).inc()
        elif outcome.status == InboundStatus.QUARANTINED:
            self.quarantined.inc()
        if opened is not None:
            self.cases_opened.labels(plan=opened[0], priority=opened[1]).inc()

    def observe_event(self, event: str, fields: dict[str, Any]) -> None:
        """Turn one log event into counter increments (see :data:`EVENT_COUNTERS`)."""
        action = _EVENT_COUNTERS.get(event)
        if action is not None:
            action(self, fields)
        if _is_database_error(fields.get("exc_info")):
            self.db_errors.labels(event=event).inc()

    def total_received(self) -> int:
        """Messages received since start, all sources."""
        return int(sum(s.value for m in self.received.collect() for s in m.samples if _is_total(s)))


def _is_total(sample: Any) -> bool:
    return bool(sample.name.endswith("_total"))


def _is_database_error(exc_info: Any) -> bool:
    # log.exception() passes exc_info=True while the exception is being handled.
    exc = sys.exc_info()[1] if exc_info is True else exc_info
    return isinstance(exc, SQLAlchemyError)


_EVENT_COUNTERS: dict[str, Callable[[Metrics, dict[str, Any]], None]] = {
    "message.received": lambda m, f: m.received.labels(source=str(f.get("source", "?"))).inc(),
    "message.commit_failed": lambda m, _: m.db_errors.labels(event="message.commit_failed").inc(),
    "outbox.sent": lambda m, _: m.outbox_sent.inc(),
    "outbox.failed": lambda m, _: m.outbox_failed.inc(),
    "outbox.retry_scheduled": lambda m, _: m.outbox_retries.inc(),
    "sla.reminder_queued": lambda m, _: m.sla_reminders.inc(),
    "sla.reminder_queued_unaddressed": lambda m, _: m.sla_reminders.inc(),
    "sla.breached": lambda m, _: m.sla_breaches.inc(),
    "sla.breached_unaddressed": lambda m, _: m.sla_breaches.inc(),
}


class DatabaseCollector:
    """Gauges read from the database at scrape time; a failing read shows as an error count."""

    def __init__(self, sessions: sessionmaker[Session], metrics: Metrics) -> None:
        self.sessions = sessions
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        """Nothing up front: the registry must not query the database when registering."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the gauges, or none when the database does not answer."""
        try:
            with self.sessions() as s:
                snap = stats.snapshot(s, datetime.now(UTC))
                wal = wal_bytes(s.get_bind())  # type: ignore[arg-type]
        except SQLAlchemyError:
            self.metrics.db_errors.labels(event="metrics.scrape").inc()
            return
        yield from _gauges(snap)
        if wal is not None:
            yield GaugeMetricFamily(
                "mail2case_sqlite_wal_bytes", "Size of the SQLite write-ahead log", value=wal
            )


_LABELLED_GAUGES = (
    ("inbound_messages", "Raw messages by status", ("status",), "inbound"),
    ("outbox_messages", "Outgoing mails by status (queued, sent, failed)", ("status",), "outbox"),
    ("cases", "Cases by status, plan and priority", ("status", "plan", "priority"), "cases"),
    (
        "imap_state_age_seconds",
        "Seconds since a mailbox poller last wrote its state (lease or progress)",
        ("mailbox",),
        "mailbox_age",
    ),
)


def _gauges(snap: stats.Snapshot) -> Iterator[Metric]:
    for name, doc, labels, attr in _LABELLED_GAUGES:
        family = GaugeMetricFamily(f"mail2case_{name}", doc, labels=list(labels))
        for key, value in sorted(getattr(snap, attr).items()):
            family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
        yield family
    yield GaugeMetricFamily(
        "mail2case_sla_clocks_overdue", "Running SLA clocks past due", value=snap.overdue_clocks
    )
    yield GaugeMetricFamily(
        "mail2case_inbound_oldest_pending_seconds",
        "Age of the oldest message waiting to be processed",
        value=snap.oldest_pending_age,
    )


def install_event_tap(tap: EventTap) -> None:
    """Add ``tap`` to structlog's processors (replacing an earlier tap, so daemons don't stack).

    It runs after the context is merged, so bound ids (``mailbox``, ``source``) are seen.
    """
    processors = [p for p in structlog.get_config()["processors"] if not _is_tap(p)]

    def processor(
        _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        tap(str(event_dict.get("event", "")), dict(event_dict))
        return event_dict

    processor.mail2case_tap = True  # type: ignore[attr-defined]
    # Before the last processor, which hands the event to the formatter (or renders it).
    structlog.configure(processors=[*processors[:-1], processor, processors[-1]])


def _is_tap(processor: Any) -> bool:
    return bool(getattr(processor, "mail2case_tap", False))


def observed_process_pass(
    processor: Processor, sessions: sessionmaker[Session], metrics: Metrics
) -> Callable[[datetime], int]:
    """``Processor.run_once`` with each outcome and its time counted."""

    def run_once(now: datetime) -> int:
        with sessions() as s:
            ids = inbound.pending_ids(s, processor.settings.batch_size)
        started = time.perf_counter()
        done = [o for _, o in processor.handle_many([(i, now) for i in ids]) if o is not None]
        # Messages share transactions now: each is charged its share of the pass.
        seconds = (time.perf_counter() - started) / max(len(done), 1)
        for outcome in done:
            metrics.observe_outcome(outcome, seconds, outcome.opened_as)
        return len(done)

    return run_once
