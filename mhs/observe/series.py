"""Counters and histograms kept in plain dicts and exported by a prometheus-client collector
when scraped: every lifecycle event passes here on the hot path, and prometheus-client's own
metric objects take a lock and validate labels on each update, which the single-threaded
event loop does not need (scripts/bench_logging.py)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TypeVar

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

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


class Series:
    """Label values -> state, folding label sets beyond ``limit`` into ``other``."""

    __slots__ = ("documentation", "label_names", "limit", "name", "values")

    def __init__(self, name: str, documentation: str, label_names: Labels, limit: int) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = label_names
        self.limit = limit

    def _fold(self, key: Labels, present: int) -> Labels:
        return key if present < self.limit else (OTHER,) * len(key)


class Counter(Series):
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


class Histogram(Series):
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


_M = TypeVar("_M", "Counter", "Histogram")


class EventFigures:
    """The collector prometheus-client reads the event-driven figures from."""

    def __init__(self) -> None:
        self.metrics: list[Counter | Histogram] = []

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
                if isinstance(metric, Counter)
                else HistogramMetricFamily(
                    metric.name, metric.documentation, labels=metric.label_names
                )
            )
