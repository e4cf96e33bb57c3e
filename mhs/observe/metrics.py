"""Prometheus metrics, derived from the lifecycle log events in one place.

Every role logs its lifecycle as structlog events (``mhs.observe.events.Event``). The processor
:func:`record_metrics` runs first in the logging chain, before any level filtering, and
turns those events into counters and histograms of the logging role's own registry, so
each role's ``/metrics`` reports that role's figures even when several roles share one
process (``serve all``). Gauges that are not events (queue depth, in-flight deliveries,
readiness) are set by the roles through :class:`RoleMetrics`.

The event-driven figures sit in plain dicts, exported by a prometheus-client collector
when scraped: every event passes here on the hot path, and prometheus-client's own
metric objects take a lock and validate labels on each update, which the single-threaded
event loop does not need (about 3 µs an event against well under 1 µs; see
scripts/bench_logging.py).

Labels stay bounded: interaction ids, outcomes, statuses and reason kinds come from small
vocabularies; ASIDs appear only on ``mhs_messages_accepted_total`` (the hosted sender) and
``mhs_inbound_delivered_total`` (the hosted recipient), so their number is bounded by the
topology, and ``MHS_METRICS_INSTANCE_LABELS=false`` leaves them empty. A metric that meets
more label sets than it should counts the rest under ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.process_collector import ProcessCollector

from mhs.observe.events import Event
from mhs.observe.metrics_unconfirmed import declare_unconfirmed
from mhs.observe.registry import RoleRegistry
from mhs.observe.series import OTHER, Counter, EventFigures, Histogram, Labels

EventDict = MutableMapping[str, Any]

_TOKEN = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z][A-Z0-9]*)+")
_WORDS = re.compile(r"[A-Za-z][A-Za-z0-9-]*(?: [A-Za-z0-9][A-Za-z0-9-]*){0,2}")


def reason_kind(reason: object) -> str:
    """A bounded label for a free-text reason: Spine's token without the ASIDs or URL in it
    (``FOT_CHECK_FAILED_MESSAGESENDER``), else its first words (``SOAP fault 206``)."""
    if not isinstance(reason, str) or not reason:
        return "none"
    token = _TOKEN.match(reason)
    if token is not None:
        return token.group()
    words = _WORDS.match(reason)
    return words.group() if words is not None else OTHER


def _text(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _seconds(event: EventDict) -> float | None:
    value = event.get("duration_ms")
    return value / 1000 if isinstance(value, int | float) else None


_IX: Labels = ("interaction_id",)


class RoleMetrics:
    """One role's registry, its metrics, and how each lifecycle event moves them."""

    def __init__(self, role: str, *, instance_labels: bool = True, instances: int = 100) -> None:
        self.role = role
        self.registry = CollectorRegistry()
        self._instance_labels = instance_labels
        figures = EventFigures()
        per_asid = (max(instances, 1) + 1) * 8

        self._events: Counter = figures.add(
            Counter("mhs_events", "Lifecycle events logged, by event name", ("event",), 1000)
        )
        self._declare_outbound(figures, per_asid)
        self._declare_worker(figures)
        self._declare_proxy(figures)
        self._declare_inbound(figures, per_asid)
        unconfirmed = declare_unconfirmed(figures)
        self.registry.register(figures)

        # Gauges: not on the hot path, so prometheus-client's own.
        reg = self.registry
        self._fault_rules = Gauge(
            "mhs_proxy_fault_rules",
            "Fault rules active on the proxy",
            registry=reg if role == "spine-proxy" else None,
        )
        # Registered by the first role that reports it, so it never shows a made-up 0.
        self._in_flight_sources: list[Callable[[], int]] = []
        self._in_flight = Gauge(
            "mhs_deliveries_in_flight", "Deliveries being worked on now", registry=None
        )
        self._in_flight.set_function(lambda: sum(source() for source in self._in_flight_sources))
        self.queue_depth = Gauge(
            "mhs_queue_depth", "Messages ready on a queue", ["queue"], registry=reg
        )
        self.ready = Gauge("mhs_ready", "1 while /readyz answers ready", registry=reg)
        self._broker_connected: Gauge | None = None
        ProcessCollector(registry=reg)

        self._handlers: dict[str, Callable[[EventDict], None]] = {
            Event.MESSAGE_ACCEPTED: self._on_accepted,
            Event.MESSAGE_REFUSED: self._on_refused,
            Event.MESSAGE_QUEUED: self._on_queued,
            Event.DELIVERY_ATTEMPT: self._on_attempt,
            Event.DELIVERY_RETRY_SCHEDULED: self._on_retry,
            Event.DELIVERY_DELIVERED: self._on_delivered,
            Event.DELIVERY_REJECTED: self._on_rejected,
            Event.DELIVERY_DEAD_LETTERED: self._on_dead_lettered,
            Event.DELIVERY_REQUEUED: self._on_requeued,
            Event.PROXY_FORWARDED: self._on_forwarded,
            Event.PROXY_REFUSED: self._on_proxy_refused,
            Event.PROXY_FAULT_INJECTED: self._on_fault,
            Event.PROXY_FAULTS_CHANGED: self._on_faults_changed,
            Event.INBOUND_RECEIVED: self._on_received,
            Event.INBOUND_DELIVERED: self._on_inbound_delivered,
            Event.INBOUND_DUPLICATE: self._on_duplicate,
            Event.INBOUND_NACKED: self._on_nacked,
            Event.INBOUND_REFUSED: self._on_inbound_refused,
            **unconfirmed,
        }
        self._event_keys: dict[str, Labels] = {e.value: (e.value,) for e in Event}

    def _declare_outbound(self, figures: EventFigures, per_asid: int) -> None:
        """The outbound MHS's figures."""
        ix = _IX
        self._accepted: Counter = figures.add(
            Counter(
                "mhs_messages_accepted",
                "Requests accepted by the outbound MHS, per hosted sender",
                ("interaction_id", "from_asid"),
                per_asid,
            )
        )
        self._refused: Counter = figures.add(
            Counter("mhs_messages_refused", "Requests the outbound MHS refused", ("status",))
        )
        self._queued: Counter = figures.add(
            Counter("mhs_messages_queued", "Messages confirmed on the outbound queue", ix)
        )
        self._queue_seconds: Histogram = figures.add(
            Histogram(
                "mhs_queue_publish_seconds",
                "Time to publish an accepted message with the broker's confirm",
                ix,
            )
        )

    def _declare_worker(self, figures: EventFigures) -> None:
        """The delivery workers' figures."""
        ix = _IX
        self._attempts: Counter = figures.add(
            Counter(
                "mhs_delivery_attempts",
                "Sends to the Spine proxy, by outcome",
                ("interaction_id", "outcome"),
            )
        )
        self._attempt_seconds: Histogram = figures.add(
            Histogram(
                "mhs_delivery_attempt_seconds",
                "Time of one send to the Spine proxy until its answer",
                ix,
            )
        )
        self._retries: Counter = figures.add(
            Counter("mhs_delivery_retries", "Retries scheduled after a transient failure", ix)
        )
        self._delivered: Counter = figures.add(
            Counter("mhs_delivered", "Messages the Spine proxy accepted", ix)
        )
        self._rejected: Counter = figures.add(
            Counter(
                "mhs_delivery_rejected",
                "Messages Spine refused for good, by reason kind",
                ("interaction_id", "reason"),
            )
        )
        self._dead: Counter = figures.add(
            Counter(
                "mhs_dead_lettered",
                "Messages put on the dead-letter queue, by outcome",
                ("interaction_id", "outcome"),
            )
        )
        self._requeued: Counter = figures.add(
            Counter(
                "mhs_delivery_requeued",
                "Deliveries handed back to their queue because dead-lettering failed",
                (),
            )
        )

    def _declare_proxy(self, figures: EventFigures) -> None:
        """The Spine proxy's figures."""
        ix = _IX
        self._forwarded: Counter = figures.add(
            Counter(
                "mhs_proxy_forwarded",
                "Requests forwarded to the receiver's MHS, by its answer",
                ("interaction_id", "status"),
            )
        )
        self._forward_seconds: Histogram = figures.add(
            Histogram(
                "mhs_proxy_forward_seconds",
                "Time the receiver's MHS took to answer a forwarded request",
                ix,
            )
        )
        self._proxy_refused: Counter = figures.add(
            Counter(
                "mhs_proxy_refused",
                "Requests the SSP checks refused, by status and reason kind",
                ("status", "reason"),
            )
        )
        self._faults: Counter = figures.add(
            Counter(
                "mhs_proxy_faults_injected",
                "Faults the proxy injected, by kind",
                ("kind", "interaction_id"),
            )
        )

    def _declare_inbound(self, figures: EventFigures, per_asid: int) -> None:
        """The inbound MHS's figures."""
        ix = _IX
        self._received: Counter = figures.add(
            Counter("mhs_inbound_received", "Messages for hosted instances received", ix)
        )
        self._inbound_delivered: Counter = figures.add(
            Counter(
                "mhs_inbound_delivered",
                "Messages confirmed on a hosted instance's queue, per recipient",
                ("interaction_id", "to_asid"),
                per_asid,
            )
        )
        self._inbound_seconds: Histogram = figures.add(
            Histogram(
                "mhs_inbound_publish_seconds",
                "Time to publish a received message to the instance's queue",
                ix,
            )
        )
        self._duplicates: Counter = figures.add(
            Counter("mhs_inbound_duplicates_dropped", "Duplicates acknowledged, not delivered", ix)
        )
        self._nacked: Counter = figures.add(
            Counter("mhs_inbound_nacked", "Messages answered with a MessageError NACK", ())
        )
        self._inbound_refused: Counter = figures.add(
            Counter("mhs_inbound_refused", "Requests the inbound MHS refused", ("status",))
        )

    def observe(self, event: EventDict) -> None:
        """Move the metrics one lifecycle event stands for (names outside Event are ignored)."""
        name = event.get("event")
        key = self._event_keys.get(name)  # type: ignore[arg-type]
        if key is None:
            return
        self._events.inc(key)
        handler = self._handlers.get(name)  # type: ignore[arg-type]
        if handler is not None:
            handler(event)

    def track_in_flight(self, source: Callable[[], int]) -> None:
        """Count ``source()`` into ``mhs_deliveries_in_flight``, read when scraped. A worker
        calls this once its deliveries start, e.g. in its cleanup_ctx:
        ``app[METRICS].track_in_flight(lambda: worker.in_flight)``."""
        if not self._in_flight_sources:
            self.registry.register(self._in_flight)
        self._in_flight_sources.append(source)

    def untrack_in_flight(self, source: Callable[[], int]) -> None:
        if source in self._in_flight_sources:
            self._in_flight_sources.remove(source)
            if not self._in_flight_sources:
                self.registry.unregister(self._in_flight)

    def broker_connected(self, connected: bool) -> None:
        """Report the broker link (only roles with a broker have this gauge)."""
        if self._broker_connected is None:
            self._broker_connected = Gauge(
                "mhs_broker_connected", "1 while the broker link is up", registry=self.registry
            )
        self._broker_connected.set(1 if connected else 0)

    def _asid(self, value: object) -> str:
        return _text(value) if self._instance_labels else ""

    def _on_accepted(self, e: EventDict) -> None:
        self._accepted.inc((_text(e.get("interaction_id")), self._asid(e.get("from_asid"))))

    def _on_refused(self, e: EventDict) -> None:
        self._refused.inc((_text(e.get("status")),))

    def _on_queued(self, e: EventDict) -> None:
        key = (_text(e.get("interaction_id")),)
        self._queued.inc(key)
        seconds = _seconds(e)
        if seconds is not None:
            self._queue_seconds.observe(key, seconds)

    def _on_attempt(self, e: EventDict) -> None:
        interaction = _text(e.get("interaction_id"))
        self._attempts.inc((interaction, _text(e.get("outcome"))))
        seconds = _seconds(e)
        if seconds is not None:
            self._attempt_seconds.observe((interaction,), seconds)

    def _on_retry(self, e: EventDict) -> None:
        self._retries.inc((_text(e.get("interaction_id")),))

    def _on_delivered(self, e: EventDict) -> None:
        self._delivered.inc((_text(e.get("interaction_id")),))

    def _on_rejected(self, e: EventDict) -> None:
        self._rejected.inc((_text(e.get("interaction_id")), reason_kind(e.get("reason"))))

    def _on_dead_lettered(self, e: EventDict) -> None:
        self._dead.inc((_text(e.get("interaction_id")), _text(e.get("outcome"))))

    def _on_requeued(self, _: EventDict) -> None:
        self._requeued.inc(())

    def _on_forwarded(self, e: EventDict) -> None:
        interaction = _text(e.get("interaction_id"))
        self._forwarded.inc((interaction, _text(e.get("status"))))
        seconds = _seconds(e)
        if seconds is not None:
            self._forward_seconds.observe((interaction,), seconds)

    def _on_proxy_refused(self, e: EventDict) -> None:
        self._proxy_refused.inc((_text(e.get("status")), reason_kind(e.get("reason"))))

    def _on_fault(self, e: EventDict) -> None:
        self._faults.inc((_text(e.get("kind")), _text(e.get("interaction_id"))))

    def _on_faults_changed(self, e: EventDict) -> None:
        active = e.get("active")
        if isinstance(active, int):
            self._fault_rules.set(active)

    def _on_received(self, e: EventDict) -> None:
        self._received.inc((_text(e.get("interaction_id")),))

    def _on_inbound_delivered(self, e: EventDict) -> None:
        interaction = _text(e.get("interaction_id"))
        self._inbound_delivered.inc((interaction, self._asid(e.get("to_asid"))))
        seconds = _seconds(e)
        if seconds is not None:
            self._inbound_seconds.observe((interaction,), seconds)

    def _on_duplicate(self, e: EventDict) -> None:
        self._duplicates.inc((_text(e.get("interaction_id")),))

    def _on_nacked(self, _: EventDict) -> None:
        self._nacked.inc(())

    def _on_inbound_refused(self, e: EventDict) -> None:
        self._inbound_refused.inc((_text(e.get("status")),))


# The registries of the roles running in this process, found by the ``role`` every role's
# logger binds. Apps of the same role in one process (several workers) share one registry,
# which lives while any of them runs.
_roles: RoleRegistry[RoleMetrics] = RoleRegistry()


def acquire(role: str, *, instance_labels: bool = True, instances: int = 100) -> RoleMetrics:
    """The registry of ``role`` in this process, created by its first user."""
    metrics = _roles.join(role)
    if metrics is None:
        metrics = _roles.add(
            role, RoleMetrics(role, instance_labels=instance_labels, instances=instances)
        )
    return metrics


def release(role: str) -> None:
    """One user of ``role``'s registry stopped; the last one takes the registry away."""
    _roles.leave(role)


def record_metrics(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: count the event into its role's metrics. Placed before level
    filtering, so the figures do not depend on the log level."""
    metrics = _roles.get(event_dict.get("role"))
    if metrics is not None:
        metrics.observe(event_dict)
    return event_dict
