"""Latency figures for summaries: the same percentiles wherever a tool reports them."""

from __future__ import annotations

import statistics


def latency(values: list[float]) -> dict[str, float]:
    """count, p50, p90, p99 and max of ``values`` (milliseconds), 0 when there are none."""
    if not values:
        return {"count": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    if len(values) == 1:
        cuts = values * 99
    else:
        cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "count": len(values),
        "p50": round(cuts[49], 3),
        "p90": round(cuts[89], 3),
        "p99": round(cuts[98], 3),
        "max": round(max(values), 3),
    }
