"""One set of real roles for the whole corpus (starting them per case would take minutes):
inbound, GP Connect provider, Spine proxy and outbound on the real RabbitMQ, and no
delivery worker, so anything the outbound MHS accepted would still be on its queue."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from structlog.testing import capture_logs

from mhs.broker.factory import create_broker
from mhs.directory import load_topology
from mhs.messages.queues import delete_namespace_queues
from mhs.runner import Cluster, RoleName
from mhs.settings import Settings
from tests.roles.conftest import Harness, harness_factory

__all__ = ["corpus_harness", "harness_factory"]

CORPUS_ROLES: tuple[RoleName, ...] = ("inbound", "gp-provider", "spine-proxy", "outbound")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def corpus_harness(rabbitmq_url: str) -> AsyncIterator[Harness]:
    token = uuid.uuid4().hex[:12]
    with capture_logs() as logs:
        settings = Settings(
            broker_url=rabbitmq_url,
            queue_prefix=f"test-{token}.",
            connection_name=f"test-{token}",
            shutdown_timeout_s=3.0,
            forward_timeout_s=2.0,
            hl7_receiver_check="strict",  # the corpus holds what strict mode refuses
        )
        directory = load_topology()
        cluster = Cluster(settings, directory, ephemeral_ports=True)
        await cluster.start(CORPUS_ROLES)
        broker = create_broker(rabbitmq_url, connection_name=f"test-{token}-client")
        await broker.start()
        harness = Harness(cluster, broker, directory, aiohttp.ClientSession(), logs)
        try:
            yield harness
        finally:
            await harness.http.close()
            await delete_namespace_queues(broker, settings, directory)
            await broker.stop()
            await cluster.stop()
