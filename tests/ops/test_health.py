"""/healthz and /readyz tell the truth: not ready while the broker link or the consumer is
gone, ready again once it is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from mhs.broker.factory import create_broker
from mhs.directory import load_topology
from mhs.runner import Cluster, RoleName
from mhs.settings import Settings
from tests.ops.conftest import TcpRelay
from tests.roles.conftest import Harness

pytestmark = pytest.mark.rabbitmq

Answer = tuple[int, dict[str, Any]]


async def answer(http: aiohttp.ClientSession, url: str, path: str = "/readyz") -> Answer:
    async with http.get(url + path) as response:
        return response.status, await response.json()


async def metrics(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url + "/metrics") as response:
        assert response.status == 200
        return await response.text()


async def until(
    http: aiohttp.ClientSession, url: str, expected: Answer, within_s: float = 30
) -> None:
    deadline = time.monotonic() + within_s
    current = await answer(http, url)
    while current != expected:
        assert time.monotonic() < deadline, f"/readyz still answers {current}"
        await asyncio.sleep(0.02)
        current = await answer(http, url)


def ready(role: str) -> Answer:
    return 200, {"status": "ready", "role": role}


def not_ready(role: str, *problems: str) -> Answer:
    return 503, {"status": "not-ready", "role": role, "problems": list(problems)}


@asynccontextmanager
async def role_through(
    relay: TcpRelay, role: RoleName, rabbitmq_url: str, unique: str
) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """One role whose broker link runs through ``relay``."""
    settings = Settings(
        broker_url=relay.url, queue_prefix=f"test-{unique}.", shutdown_timeout_s=3.0
    )
    cluster = Cluster(settings, load_topology(), ephemeral_ports=True)
    await cluster.start([role])
    try:
        async with aiohttp.ClientSession() as http:
            yield http, cluster.urls[role]
    finally:
        await cluster.stop()
        cleaner = create_broker(rabbitmq_url, connection_name=f"test-{unique}-cleanup")
        await cleaner.start()
        for queue in (settings.outbound_queue, settings.dead_letter_queue):
            await cleaner.delete_queue(queue)
        await cleaner.stop()


async def test_every_role_is_alive_and_ready(harness_factory: Any) -> None:
    h: Harness = await harness_factory()
    for role in ("outbound", "worker", "spine-proxy", "inbound"):
        url = h.url(role)
        assert await answer(h.http, url, "/healthz") == (200, {"status": "alive", "role": role})
        # The NHS adaptor's liveness path, for load balancers configured for it.
        assert (await answer(h.http, url, "/healthcheck"))[0] == 200
        assert await answer(h.http, url) == ready(role)
        assert "mhs_ready 1.0" in await metrics(h.http, url)


@pytest.mark.parametrize("role", ["outbound", "inbound"])
async def test_a_lost_broker_link_is_not_ready_until_it_is_back(
    broker_relay: TcpRelay, rabbitmq_url: str, unique: str, role: RoleName
) -> None:
    async with role_through(broker_relay, role, rabbitmq_url, unique) as (http, url):
        assert await answer(http, url) == ready(role)
        assert "mhs_broker_connected 1.0" in await metrics(http, url)
        await broker_relay.cut()
        await until(http, url, not_ready(role, "broker not connected"))
        text = await metrics(http, url)
        assert "mhs_broker_connected 0.0" in text
        assert "mhs_ready 0.0" in text
        # Alive all the same: restarting the process would not bring the broker back.
        assert (await answer(http, url, "/healthz"))[0] == 200
        await broker_relay.start()
        await until(http, url, ready(role))
        assert "mhs_broker_connected 1.0" in await metrics(http, url)


async def test_a_worker_whose_consumer_was_cancelled_is_not_ready(harness_factory: Any) -> None:
    h: Harness = await harness_factory(["worker"])
    url = h.url("worker")
    assert await answer(h.http, url) == ready("worker")
    # Deleting its queue makes RabbitMQ cancel the worker's consumer.
    await h.broker.delete_queue(h.settings.outbound_queue)
    await until(h.http, url, not_ready("worker", "not consuming the outbound queue"))
    assert "mhs_ready 0.0" in await metrics(h.http, url)
