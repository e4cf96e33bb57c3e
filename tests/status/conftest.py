"""Status timelines: real roles on port 0 with the production logging chain (the timelines
are derived from it), real RabbitMQ, and Redis or the in-process store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.ops.conftest import LiveLogs, live_logs
from tests.roles.conftest import Harness, harness_factory
from tests.sync_async.conftest import redis_keys

__all__ = [
    "LiveLogs",
    "events",
    "get_status",
    "harness_factory",
    "live_logs",
    "redis_keys",
    "timeline",
]


async def get_status(
    h: Harness, message_id: str, caller: str, url: str | None = None
) -> tuple[int, Any]:
    """GET /messages/{message_id} as ``caller``: the status and the JSON (or text) body."""
    async with h.http.get(
        (url or h.url("outbound")) + f"/messages/{message_id}",
        headers={"Authorization": f"Bearer {h.token(caller)}"},
    ) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


def events(body: dict[str, Any]) -> list[str]:
    return [step["event"] for step in body["steps"]]


async def timeline(
    h: Harness,
    message_id: str,
    caller: str,
    *,
    until: Callable[[dict[str, Any]], bool],
    within_s: float = 20.0,
) -> dict[str, Any]:
    """The timeline once ``until`` holds for it: steps are written in batches, and some
    roles log a step after later ones have happened."""
    deadline = time.monotonic() + within_s
    while True:
        status, body = await get_status(h, message_id, caller)
        if status == 200 and until(body):
            return dict(body)
        assert time.monotonic() < deadline, f"{message_id}: {status} {body}"
        await asyncio.sleep(0.05)
