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
from bisect import bisect_left
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from mhs.observe.events import Event

EventDict = MutableMapping[str, Any]
Labels = tuple[str, ...]

# Seconds: from a fast local hop to a delivery held by a slow or faulty Spine.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
OTHER = "other"
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


class _Series:
    """Label values -> state, folding label sets beyond ``limit`` into ``other``."""

    __slots__ = ("documentation", "label_names", "limit", "name", "values")

    def __init__(self, name: str, documentation: str, label_names: Labels, limit: int) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = label_names
        self.limit = limit

    def _fold(self, key: Labels, present: int) -> Labels:
        return key if present < self.limit else (OTHER,) * len(key)


class _Counter(_Series):
    __slots__ = ("counts",)

    def __init__(self, name: str, documentation: str, label_names: Labels, limit: int = 100):
        super().__init__(name, documentation, label_names, limit)
        self.counts: dict[Labels, int] = {}

    def inc(self, key: Labels) -> None:
        counts = self.counts
        value = counts.get(key)
        if value is None:
            key = self._fold(key, len(counts))
            value = counts.get(key, 0)
        counts[key] = value + 1

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        for key, value in self.counts.items():
            family.add_metric(key, value)
        return family


class _Histogram(_Series):
    """Per label set: a count per bucket (the last one above every bound), then the sum."""

    __slots__ = ("bounds", "series")

    def __init__(
        self,
        name: str,
        documentation: str,
        label_names: Labels,
        bounds: tuple[float, ...] = LATENCY_BUCKETS,
        limit: int = 100,
    ) -> None:
        super().__init__(name, documentation, label_names, limit)
        self.bounds = bounds
        self.series: dict[Labels, list[float]] = {}

    def observe(self, key: Labels, value: float) -> None:
        series = self.series.get(key)
        if series is None:
            key = self._fold(key, len(self.series))
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = [0.0] * (len(self.bounds) + 2)
        series[bisect_left(self.bounds, value)] += 1
        series[-1] += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        for key, series in self.series.items():
            buckets: list[tuple[str, float]] = []
            total = 0.0
            for bound, count in zip((*map(str, self.bounds), "+Inf"), series, strict=False):
                total += count
                buckets.append((bound, total))
            family.add_metric(key, buckets, series[-1])
        return family


_M = TypeVar("_M", "_Counter", "_Histogram")


class _EventFigures:
    """The collector prometheus-client reads the event-driven figures from."""

    def __init__(self) -> None:
        self.metrics: list[_Counter | _Histogram] = []

    def add(self, metric: _M) -> _M:
        self.metrics.append(metric)
        return metric

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield metric.family()

    def describe(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield (
                CounterMetricFamily(metric.name, metric.documentation, labels=metric.label_names)
                if isinstance(metric, _Counter)
                else HistogramMetricFamily(
                    metric.name, metric.documentation, labels=metric.label_names
                )
            )


def _text(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _seconds(event: EventDict) -> float | None:
    value = event.get("duration_ms")
    return value / 1000 if isinstance(value, int | float) else None


class RoleMetrics:
    """One role's registry, its metrics, and how each lifecycle event moves them."""

    def __init__(self, role: str, *, instance_labels: bool = True, instances: int = 100) -> None:
        self.role = role
        self.registry = CollectorRegistry()
        self._instance_labels = instance_labels
        figures = _EventFigures()
        per_asid = (max(instances, 1) + 1) * 8
        ix = ("interaction_id",)
        counter, histogram = _Counter, _Histogram

        self._events: _Counter = figures.add(
            counter("mhs_events", "Lifecycle events logged, by event name", ("event",), 1000)
        )
        # outbound
        self._accepted: _Counter = figures.add(
            counter(
                "mhs_messages_accepted",
                "Requests accepted by the outbound MHS, per hosted sender",
                ("interaction_id", "from_asid"),
                per_asid,
            )
        )
        self._refused: _Counter = figures.add(
            counter("mhs_messages_refused", "Requests the outbound MHS refused", ("status",))
        )
        self._queued: _Counter = figures.add(
            counter("mhs_messages_queued", "Messages confirmed on the outbound queue", ix)
        )
        self._queue_seconds: _Histogram = figures.add(
            histogram(
                "mhs_queue_publish_seconds",
                "Time to publish an accepted message with the broker's confirm",
                ix,
            )
        )
        # worker
        self._attempts: _Counter = figures.add(
            counter(
                "mhs_delivery_attempts",
                "Sends to the Spine proxy, by outcome",
                ("interaction_id", "outcome"),
            )
        )
        self._attempt_seconds: _Histogram = figures.add(
            histogram(
                "mhs_delivery_attempt_seconds",
                "Time of one send to the Spine proxy until its answer",
                ix,
            )
        )
        self._retries: _Counter = figures.add(
            counter("mhs_delivery_retries", "Retries scheduled after a transient failure", ix)
        )
        self._delivered: _Counter = figures.add(
            counter("mhs_delivered", "Messages the Spine proxy accepted", ix)
        )
        self._rejected: _Counter = figures.add(
            counter(
                "mhs_delivery_rejected",
                "Messages Spine refused for good, by reason kind",
                ("interaction_id", "reason"),
            )
        )
        self._dead: _Counter = figures.add(
            counter(
                "mhs_dead_lettered",
                "Messages put on the dead-letter queue, by outcome",
                ("interaction_id", "outcome"),
            )
        )
        self._requeued: _Counter = figures.add(
            counter(
                "mhs_delivery_requeued",
                "Deliveries handed back to their queue because dead-lettering failed",
                (),
            )
        )
        # spine proxy
        self._forwarded: _Counter = figures.add(
            counter(
                "mhs_proxy_forwarded",
                "Requests forwarded to the receiver's MHS, by its answer",
                ("interaction_id", "status"),
            )
        )
        self._forward_seconds: _Histogram = figures.add(
            histogram(
                "mhs_proxy_forward_seconds",
                "Time the receiver's MHS took to answer a forwarded request",
                ix,
            )
        )
        self._proxy_refused: _Counter = figures.add(
            counter(
                "mhs_proxy_refused",
                "Requests the SSP checks refused, by status and reason kind",
                ("status", "reason"),
            )
        )
        self._faults: _Counter = figures.add(
            counter(
                "mhs_proxy_faults_injected",
                "Faults the proxy injected, by kind",
                ("kind", "interaction_id"),
            )
        )
        # inbound
        self._received: _Counter = figures.add(
            counter("mhs_inbound_received", "Messages for hosted instances received", ix)
        )
        self._inbound_delivered: _Counter = figures.add(
            counter(
                "mhs_inbound_delivered",
                "Messages confirmed on a hosted instance's queue, per recipient",
                ("interaction_id", "to_asid"),
                per_asid,
            )
        )
        self._inbound_seconds: _Histogram = figures.add(
            histogram(
                "mhs_inbound_publish_seconds",
                "Time to publish a received message to the instance's queue",
                ix,
            )
        )
        self._duplicates: _Counter = figures.add(
            counter("mhs_inbound_duplicates_dropped", "Duplicates acknowledged, not delivered", ix)
        )
        self._nacked: _Counter = figures.add(
            counter("mhs_inbound_nacked", "Messages answered with a MessageError NACK", ())
        )
        self._inbound_refused: _Counter = figures.add(
            counter("mhs_inbound_refused", "Requests the inbound MHS refused", ("status",))
        )
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
        }
        self._event_keys: dict[str, Labels] = {e.value: (e.value,) for e in Event}

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
_active: dict[str, RoleMetrics] = {}
_users: dict[str, int] = {}


def acquire(role: str, *, instance_labels: bool = True, instances: int = 100) -> RoleMetrics:
    """The registry of ``role`` in this process, created by its first user."""
    metrics = _active.get(role)
    if metrics is None:
        metrics = _active[role] = RoleMetrics(
            role, instance_labels=instance_labels, instances=instances
        )
    _users[role] = _users.get(role, 0) + 1
    return metrics


def release(role: str) -> None:
    """One user of ``role``'s registry stopped; the last one takes the registry away."""
    left = _users.get(role, 0) - 1
    if left > 0:
        _users[role] = left
        return
    _users.pop(role, None)
    _active.pop(role, None)


def record_metrics(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: count the event into its role's metrics. Placed before level
    filtering, so the figures do not depend on the log level."""
    metrics = _active.get(event_dict.get("role"))  # type: ignore[arg-type]
    if metrics is not None:
        metrics.observe(event_dict)
    return event_dict
