"""What one lifecycle log event costs, with and without the metrics processor.

    scripts/dev python scripts/bench_logging.py [--events 200000] [--json]

Times a worker's ``delivery.attempt`` event (the fields it really carries) through:
- ``plain``: the chain without metrics, level filtered in the bound logger (the old set-up);
- ``metrics``: mhs.observe.logs as configured now (metrics processor first, then the level);
- ``metrics, level WARNING``: the same event when the level drops it (metrics only);
- ``metrics, to a file``: as ``metrics``, written to a real file as a role writes stdout;
and prints microseconds per event (best of 5 rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import tempfile
import time
from typing import Any

import orjson
import structlog

from mhs.observe import metrics
from mhs.observe.events import Event
from mhs.observe.logs import configure_logging, get_logger

FIELDS: dict[str, Any] = {
    "message_id": "7797C19E-5B20-4BF5-B9A8-DE3838759FCB",
    "correlation_id": "8B6C133A-A82C-493C-A9BD-EA098D396A88",
    "interaction_id": "RCMR_IN010000UK05",
    "from_asid": "918000000001",
    "to_asid": "918000000002",
    "from_ods": "A80001",
    "to_ods": "A80002",
}


def _plain(level: str, stream: io.StringIO) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(serializer=lambda v, **_: orjson.dumps(v).decode()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def _per_event_us(events: int) -> float:
    log = get_logger("worker")
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for n in range(events):
            log.info(
                Event.DELIVERY_ATTEMPT,
                attempt=1,
                outcome="accepted",
                status=200,
                reason="HTTP 200",
                duration_ms=1.5 + (n & 7),
                **FIELDS,
            )
        best = min(best, time.perf_counter() - started)
    return best / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stream = io.StringIO()
    results: dict[str, float] = {}

    _plain("INFO", stream)
    results["plain"] = _per_event_us(args.events)
    metrics.acquire("worker")
    configure_logging("INFO", "json", stream=stream)
    results["metrics"] = _per_event_us(args.events)
    configure_logging("WARNING", "json", stream=stream)
    results["metrics, level WARNING"] = _per_event_us(args.events)
    _plain("WARNING", stream)
    results["plain, level WARNING"] = _per_event_us(args.events)

    with tempfile.TemporaryFile("w+", encoding="utf-8") as file:
        configure_logging("INFO", "json", stream=file)
        results["metrics, to a file"] = _per_event_us(args.events)
        results["metrics, to a file, in a role's loop"] = asyncio.run(_in_loop(args.events))
    _report(results, args)


async def _in_loop(events: int) -> float:
    # A role logs from its event loop, where lines are flushed once per interval.
    return _per_event_us(events)


def _report(results: dict[str, float], args: argparse.Namespace) -> None:
    results["metrics cost"] = results["metrics"] - results["plain"]

    if args.json:
        print(orjson.dumps({k: round(v, 2) for k, v in results.items()}).decode())
        return
    for name, value in results.items():
        print(f"{name:<40} {value:6.2f} µs/event")


if __name__ == "__main__":
    main()
