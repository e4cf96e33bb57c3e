"""A three-node RabbitMQ cluster on this machine (scripts/cluster): a role given every node's
URL loses the node it is on and carries on with a surviving one, its quorum queue intact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

from mhs.broker import OutgoingMessage
from mhs.broker.rabbitmq import RabbitMqBroker
from mhs.chaos import rabbit_cluster
from mhs.chaos.rabbit_cluster import Node
from mhs.settings import Settings

from .support import collect, eventually

pytestmark = pytest.mark.rabbitmq


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[Node]]:
    nodes = rabbit_cluster.nodes(3)
    try:
        rabbit_cluster.start(nodes)
    except rabbit_cluster.ClusterError as error:
        pytest.fail(f"the test cluster would not start: {error}")
    yield nodes
    # Removed too: every run starts from a fresh cluster, whatever the last one left.
    rabbit_cluster.stop(nodes, remove=True)


@pytest.fixture
async def broker(cluster: list[Node], unique: str) -> AsyncIterator[RabbitMqBroker]:
    broker = RabbitMqBroker(
        rabbit_cluster.broker_url(cluster),
        connection_name=f"mhs-test-{unique}",
        start_timeout_s=10.0,
        publish_timeout_s=5.0,
        reconnect_interval_s=0.3,
    )
    await broker.start()
    yield broker
    await broker.delete_queue(f"test-{unique}.cluster")
    await broker.stop()


def _message(n: int) -> OutgoingMessage:
    return OutgoingMessage(body=f"m{n}".encode(), message_id=f"m{n}")


async def test_losing_the_node_it_is_on_moves_a_role_to_a_surviving_one(
    cluster: list[Node], broker: RabbitMqBroker, unique: str
) -> None:
    queue = f"test-{unique}.cluster"
    await broker.declare_queue(queue)
    for n in range(5):
        await broker.publish(queue, _message(n))
    on = next(node for node in cluster if urlsplit(broker.node).port == node.port)
    await asyncio.to_thread(rabbit_cluster.pause, on)
    try:
        # Down and back on another node, faster than a poll may see it down.
        await eventually(
            lambda: broker.is_connected and urlsplit(broker.node).port != on.port, within_s=30
        )
        # The quorum queue kept what it held, takes more, and a consumer gets them all.
        for n in range(5, 10):
            await broker.publish(queue, _message(n))
        _, inbox = await collect(broker, queue)
        got = {(await inbox.next(within_s=10)).message_id for _ in range(10)}
        assert got == {f"m{n}" for n in range(10)}
    finally:
        await asyncio.to_thread(rabbit_cluster.resume, on)


def test_a_broker_url_may_name_every_node_of_a_cluster(cluster: list[Node]) -> None:
    url = rabbit_cluster.broker_url(cluster)
    assert Settings(broker_url=url).broker_url == url
    with pytest.raises(ValueError, match="a cluster is several such URLs, comma-separated"):
        Settings(broker_url=f"{cluster[0].url},http://127.0.0.1:5682/")
