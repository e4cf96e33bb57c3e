"""wait-for-response and Spine's replies: real roles on port 0, real RabbitMQ (and Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from mhs.roles.outbound import create_outbound_app
from mhs.roles.outbound.replies import REPLIES
from tests.roles.conftest import HL7, Harness, harness_factory

__all__ = ["harness_factory", "redis_keys", "replica_factory"]

SENDER = "918000000001"  # A80001, hosted
SPINE = "990000000806"
SCR_QUERY = "QUPC_IN160101UK05"
SCR_REPLY = "QUPC_IN160102UK05"


async def post(
    h: Harness,
    url: str,
    *,
    message_id: str,
    wait: bool = True,
    sender: str = SENDER,
    interaction: str = SCR_QUERY,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, dict[str, str]]:
    """POST / on the outbound MHS at ``url`` (no ods-code: Spine); status, text, headers."""
    async with h.http.post(
        url + "/",
        data=orjson.dumps({"payload": HL7.format(id=message_id)}),
        headers={
            "Authorization": f"Bearer {h.token(sender)}",
            "Interaction-Id": interaction,
            "wait-for-response": "true" if wait else "false",
            "Message-Id": message_id,
            "Content-Type": "application/json",
            **(headers or {}),
        },
    ) as response:
        return response.status, await response.text(), dict(response.headers)


async def until(check: Callable[[], bool], within_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"not within {within_s}s: {what}"
        await asyncio.sleep(0.02)


class Replica:
    """A second outbound MHS replica beside the harness's own."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self.runner = runner
        self.url = url

    @property
    def reply_queue(self) -> str:
        return self.runner.app[REPLIES].queue

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def replica_factory() -> AsyncIterator[Callable[[Harness], Any]]:
    started: list[Replica] = []

    async def start(h: Harness) -> Replica:
        app = create_outbound_app(h.settings, h.directory, broker=h.cluster.shared_broker)
        runner = web.AppRunner(app, shutdown_timeout=3.0, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        replica = Replica(runner, f"http://{host}:{port}")
        started.append(replica)
        return replica

    yield start
    for replica in started:
        await replica.stop()


@pytest.fixture
async def redis_keys(redis_url: str, unique: str) -> AsyncIterator[str]:
    """The Redis URL; the test's keys (prefix ``test-<unique>.``) are removed afterwards."""
    yield redis_url
    client = aioredis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=f"test-{unique}.*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
