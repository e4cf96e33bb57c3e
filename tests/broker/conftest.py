"""The broker under test: the in-memory one, and RabbitMQ with quorum and classic queues."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from mhs.broker import Broker
from mhs.broker.memory import MemoryBroker
from mhs.broker.rabbitmq import RabbitMqBroker

KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("quorum", marks=pytest.mark.rabbitmq, id="rabbitmq-quorum"),
    pytest.param("classic", marks=pytest.mark.rabbitmq, id="rabbitmq-classic"),
]


@dataclass
class Kit:
    """Makes started brokers of one kind and unique queue names; cleans up after the test."""

    kind: str
    url: str | None
    unique: str
    brokers: list[Broker] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)

    @property
    def rabbitmq(self) -> bool:
        return self.url is not None

    @property
    def has_delivery_limit(self) -> bool:
        return self.kind in ("memory", "quorum")

    def queue(self, label: str) -> str:
        name = f"test-{self.unique}.{label}"
        self.queues.append(name)
        return name

    async def broker(self, *, delivery_limit: int = 20) -> Broker:
        broker: Broker
        if self.url is None:
            broker = MemoryBroker(delivery_limit=delivery_limit)
        else:
            broker = RabbitMqBroker(
                self.url,
                connection_name=f"mhs-test-{self.unique}",
                queue_type="quorum" if self.kind == "quorum" else "classic",
                delivery_limit=delivery_limit,
                start_timeout_s=5.0,
                publish_timeout_s=5.0,
                reconnect_interval_s=0.2,
            )
        await broker.start()
        self.brokers.append(broker)
        return broker


@pytest.fixture(params=KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def broker_url(broker_kind: str, request: pytest.FixtureRequest) -> str | None:
    if broker_kind == "memory":
        return None
    url: str = request.getfixturevalue("rabbitmq_url")
    return url


@pytest.fixture
async def kit(broker_kind: str, broker_url: str | None, unique: str) -> AsyncIterator[Kit]:
    kit = Kit(broker_kind, broker_url, unique)
    yield kit
    for broker in kit.brokers:
        await broker.stop()
    if kit.url is not None and kit.queues:
        cleaner = RabbitMqBroker(kit.url, connection_name=f"mhs-test-{unique}-cleanup")
        await cleaner.start()
        for queue in kit.queues:
            await cleaner.delete_queue(queue)
        await cleaner.stop()


@pytest.fixture
async def broker(kit: Kit) -> Broker:
    return await kit.broker()
