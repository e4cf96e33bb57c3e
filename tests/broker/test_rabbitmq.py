"""What only RabbitMQ can show: recovery from a lost link, confirms under load, topology."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest

from mhs.broker import BrokerError, Delivery, OutgoingMessage
from mhs.broker.rabbitmq import RabbitMqBroker
from mhs.broker.rabbitmq_consumer import RabbitSubscription

from .support import Inbox, eventually

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def rabbit(rabbitmq_url: str, unique: str) -> AsyncIterator[RabbitMqBroker]:
    broker = RabbitMqBroker(
        rabbitmq_url,
        connection_name=f"mhs-test-{unique}",
        start_timeout_s=5.0,
        publish_timeout_s=5.0,
        reconnect_interval_s=0.2,
    )
    await broker.start()
    yield broker
    for label in ("work", "classic"):
        await broker.delete_queue(f"test-{unique}.{label}")
    await broker.stop()


async def rabbitmqctl(*args: str) -> str:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed here")
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        pytest.skip(f"rabbitmqctl cannot manage the broker here: {err.decode().strip()}")
    return out.decode()


async def close_connection_named(name: str) -> None:
    """Close, from the server side, only the connection this test opened."""
    listing = await rabbitmqctl("list_connections", "pid", "client_properties")
    pids = [line.split("\t")[0] for line in listing.splitlines() if f'"{name}"' in line]
    assert len(pids) == 1, f"expected one connection named {name}: {listing}"
    await rabbitmqctl("close_connection", pids[0], "closed by the broker recovery test")


async def test_a_connection_the_server_closes_is_restored(
    rabbit: RabbitMqBroker, unique: str
) -> None:
    queue = f"test-{unique}.work"
    await rabbit.declare_queue(queue)
    inbox = Inbox()
    held: list[Delivery] = []

    async def handler(delivery: Delivery) -> None:
        if not delivery.redelivered and delivery.body == b"before":
            held.append(delivery)  # left unacked across the outage
            return
        await delivery.ack()
        inbox.deliveries.put_nowait(delivery)

    subscription = await rabbit.consume(queue, handler, prefetch=4)
    await rabbit.publish(queue, OutgoingMessage(body=b"before"))
    await eventually(lambda: len(held) == 1)

    seen: set[tuple[bool, bool]] = set()

    async def watch() -> None:
        while True:
            seen.add((rabbit.is_connected, subscription.active))
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    try:
        await close_connection_named(rabbit.connection_name)
        # Idempotent calls wait for the link instead of failing.
        assert await rabbit.queue_depth(queue) in (0, 1)
        assert await rabbit.get(f"test-{unique}.absent") is None
        await eventually(lambda: rabbit.is_connected and subscription.active)
    finally:
        watcher.cancel()
    assert any(not connected for connected, _ in seen)
    assert any(not active for _, active in seen)

    # Acking on the lost channel does nothing; the broker hands the message out again.
    await held[0].ack()
    again = await inbox.next()
    assert (again.body, again.redelivered) == (b"before", True)
    await rabbit.publish(queue, OutgoingMessage(body=b"after"))
    after = await inbox.next()
    assert (after.body, after.redelivered) == (b"after", False)
    await subscription.cancel()


async def test_a_consumer_channel_the_broker_closes_is_reopened(
    rabbit: RabbitMqBroker, unique: str
) -> None:
    queue = f"test-{unique}.work"
    await rabbit.declare_queue(queue)
    inbox = Inbox()

    async def handler(delivery: Delivery) -> None:
        await delivery.ack()
        inbox.deliveries.put_nowait(delivery)

    subscription = await rabbit.consume(queue, handler, prefetch=4)
    assert isinstance(subscription, RabbitSubscription)
    channel = subscription._channel
    assert channel is not None
    # What RabbitMQ does on a consumer timeout: PRECONDITION_FAILED closes the channel.
    await channel.basic_ack(999_999)
    await eventually(lambda: channel.is_closed)
    await eventually(lambda: subscription.active and subscription._channel is not channel)
    await rabbit.publish(queue, OutgoingMessage(body=b"still consumed"))
    assert (await inbox.next()).body == b"still consumed"
    await subscription.cancel()


async def test_many_concurrent_publishes_are_all_confirmed(
    rabbit: RabbitMqBroker, unique: str
) -> None:
    queue = f"test-{unique}.work"
    await rabbit.declare_queue(queue)
    body = b"x" * 1024
    results = await asyncio.gather(
        *(rabbit.publish(queue, OutgoingMessage(body=body)) for _ in range(2000)),
        return_exceptions=True,
    )
    assert [r for r in results if r is not None] == []
    assert await rabbit.queue_depth(queue) == 2000


async def test_queues_are_declared_with_the_configured_type_and_limit(
    rabbit: RabbitMqBroker, rabbitmq_url: str, unique: str
) -> None:
    quorum, classic = f"test-{unique}.work", f"test-{unique}.classic"
    await rabbit.declare_queue(quorum, dead_letter_to=classic, message_ttl_s=1.5)
    other = RabbitMqBroker(rabbitmq_url, connection_name=f"mhs-test-{unique}-classic",
                           queue_type="classic")  # fmt: skip
    await other.start()
    try:
        await other.declare_queue(classic)
    finally:
        await other.stop()
    listing = await rabbitmqctl("list_queues", "name", "type", "durable", "arguments")
    rows = {line.split("\t")[0]: line for line in listing.splitlines()}
    assert "\tquorum\ttrue\t" in rows[quorum]
    for argument in ('{"x-delivery-limit",20}', '{"x-message-ttl",1500}',
                     f'{{"x-dead-letter-routing-key","{classic}"}}',
                     # Nothing dead-lettered may vanish on the way to its target.
                     '{"x-dead-letter-strategy","at-least-once"}',
                     '{"x-overflow","reject-publish"}'):  # fmt: skip
        assert argument in rows[quorum]
    assert "\tclassic\ttrue\t" in rows[classic]
    assert "x-delivery-limit" not in rows[classic]


async def test_start_gives_up_with_a_broker_error_that_hides_the_password() -> None:
    broker = RabbitMqBroker(
        "amqp://guest:s3cret-pw@127.0.0.1:1/",
        connection_name="mhs-test-unreachable",
        start_timeout_s=0.5,
        reconnect_interval_s=0.1,
    )
    async with asyncio.timeout(3):
        with pytest.raises(BrokerError, match="cannot reach RabbitMQ") as raised:
            await broker.start()
    assert "s3cret-pw" not in str(raised.value)
    assert not broker.is_connected
    await broker.stop()


async def test_batched_acks_and_rejects_stay_in_order_while_the_connection_is_busy(
    rabbit: RabbitMqBroker, unique: str
) -> None:
    # Acks are batched; with publishes filling aiormq's bounded write queue at the same
    # time, a frame sent out of order would make RabbitMQ close the channel ("unknown
    # delivery tag"), and its unacked messages would come round again.
    work, dead, side = (f"test-{unique}.{name}" for name in ("work", "dead", "side"))
    await rabbit.declare_queue(dead)
    await rabbit.declare_queue(work, dead_letter_to=dead)
    await rabbit.declare_queue(side)
    total = 3000
    await asyncio.gather(
        *(rabbit.publish(work, OutgoingMessage(body=b"%d" % n)) for n in range(total))
    )
    handled: dict[int, int] = {}
    requeued = rejected = 0
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        nonlocal requeued, rejected
        n = int(delivery.body)
        await asyncio.sleep(0.001 * (n % 5))
        await rabbit.publish(side, OutgoingMessage(body=b"x" * 4096))
        if n % 23 == 0 and not delivery.redelivered:
            requeued += 1
            await delivery.reject(requeue=True)
            return
        if n % 17 == 0:
            rejected += 1
            await delivery.reject(requeue=False)
        else:
            await delivery.ack()
        handled[n] = handled.get(n, 0) + 1
        if len(handled) == total:
            done.set()

    subscription = await rabbit.consume(work, handler, prefetch=64)
    async with asyncio.timeout(60):
        await done.wait()
    assert subscription.active
    await subscription.cancel()
    assert all(count == 1 for count in handled.values())
    assert requeued == len(range(0, total, 23))
    assert rejected == len([n for n in range(total) if n % 17 == 0])
    assert await rabbit.queue_depth(work) == 0
    await eventually(lambda: _depth(rabbit, dead, rejected))
    for queue in (dead, side):
        await rabbit.delete_queue(queue)


async def _depth(broker: RabbitMqBroker, queue: str, expected: int) -> bool:
    return await broker.queue_depth(queue) == expected
