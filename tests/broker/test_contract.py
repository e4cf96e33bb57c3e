"""The broker contract, run against every transport: what roles may rely on."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import orjson
import pytest

from mhs.broker import Broker, BrokerError, Delivery, OutgoingMessage, PublishError, Unroutable

from .conftest import Kit
from .support import collect, eventually

HEADERS: dict[str, Any] = {
    "text": "plain",
    "unicode": "ünïcödé ✓",
    "empty": "",
    "small": 7,
    "negative": -42,
    "large": 2**40,
    "ratio": 1.25,
    "yes": True,
    "no": False,
    "nothing": None,
}


def full_message(message_id: str = "m-1") -> OutgoingMessage:
    return OutgoingMessage(
        body=b"\x00\xffnot utf-8 \xc3",
        message_id=message_id,
        correlation_id="c-1",
        headers=HEADERS,
        content_type="application/xml",
        type="RCMR_IN010000UK05",
        app_id="mhs-test",
        timestamp=datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=timezone(timedelta(hours=1))),
    )


def assert_full_message(delivery: Delivery) -> None:
    assert delivery.body == b"\x00\xffnot utf-8 \xc3"
    assert delivery.message_id == "m-1"
    assert delivery.correlation_id == "c-1"
    assert delivery.content_type == "application/xml"
    assert delivery.type == "RCMR_IN010000UK05"
    assert delivery.app_id == "mhs-test"
    # AMQP carries whole seconds; it arrives in UTC.
    assert delivery.timestamp == datetime(2026, 3, 4, 4, 6, 7, tzinfo=UTC)
    assert delivery.timestamp.utcoffset() == timedelta(0)
    assert delivery.redelivered is False
    received = {key: delivery.headers[key] for key in HEADERS}
    assert received == HEADERS
    assert {k: type(v) for k, v in received.items()} == {k: type(v) for k, v in HEADERS.items()}


def deaths(delivery: Delivery) -> list[dict[str, Any]]:
    raw = delivery.headers["x-death"]
    assert isinstance(raw, str)
    parsed: list[dict[str, Any]] = orjson.loads(raw)
    return parsed


async def test_round_trip_through_a_consumer_keeps_every_property(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    await broker.publish(queue, full_message())
    subscription, inbox = await collect(broker, queue)
    assert subscription.active
    assert_full_message(await inbox.next())
    await subscription.cancel()


async def test_round_trip_through_get_keeps_every_property(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    assert await broker.get(queue) is None
    await broker.publish(queue, full_message())
    delivery = await broker.get(queue)
    assert delivery is not None
    assert_full_message(delivery)
    await delivery.ack()
    assert await broker.get(queue) is None


async def test_a_message_without_an_id_is_given_one(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    await broker.publish(queue, OutgoingMessage(body=b"{}"))
    delivery = await broker.get(queue)
    assert delivery is not None
    assert delivery.message_id
    assert delivery.content_type == "application/json"
    assert delivery.timestamp is None
    await delivery.ack()


async def test_publishing_to_a_missing_queue_raises_and_delivers_nothing(
    kit: Kit, broker: Broker
) -> None:
    missing, present = kit.queue("missing"), kit.queue("present")
    await broker.declare_queue(present)
    with pytest.raises(Unroutable, match="unroutable"):
        await broker.publish(missing, OutgoingMessage(body=b"lost", message_id="x"))
    # Many at once on the one channel: each publish gets its own answer.
    results = await asyncio.gather(
        *(
            broker.publish(
                missing if n % 2 else present, OutgoingMessage(body=b"n", message_id=f"n{n}")
            )
            for n in range(40)
        ),
        return_exceptions=True,
    )
    assert [isinstance(r, PublishError) for r in results] == [n % 2 == 1 for n in range(40)]
    assert await broker.queue_depth(present) == 20
    # The lost messages went nowhere, not even into a queue declared afterwards.
    await broker.declare_queue(missing)
    assert await broker.queue_depth(missing) == 0


async def test_publishes_sharing_a_message_id_each_get_their_own_answer(
    kit: Kit, broker: Broker
) -> None:
    missing, present = kit.queue("missing"), kit.queue("present")
    await broker.declare_queue(present)
    same = OutgoingMessage(body=b"dup", message_id="same-id")
    results = await asyncio.gather(
        *(broker.publish(missing if n % 2 else present, same) for n in range(20)),
        return_exceptions=True,
    )
    assert [isinstance(r, PublishError) for r in results] == [n % 2 == 1 for n in range(20)]
    assert await broker.queue_depth(present) == 10


async def test_header_values_amqp_cannot_carry_fail_the_publish(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    # An epoch time as a float would lose minutes in AMQP's 32-bit float: it fails instead.
    for bad in (b"bytes", 2**64, [1, 2], 1795574793.95, float("nan")):
        headers = cast(dict[str, Any], {"bad": bad})
        with pytest.raises(PublishError):
            await broker.publish(queue, OutgoingMessage(body=b"x", headers=headers))
    await broker.publish(queue, OutgoingMessage(body=b"fine"))
    assert await broker.queue_depth(queue) == 1


async def test_prefetch_bounds_the_handlers_running_at_once(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    prefetch, total = 4, 24
    for n in range(total):
        await broker.publish(queue, OutgoingMessage(body=b"%d" % n))
    running = peak = handled = 0
    full = asyncio.Event()
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        nonlocal running, peak, handled
        running += 1
        peak = max(peak, running)
        if running == prefetch:
            full.set()
        # Hold the first ones until prefetch handlers run together, proving concurrency.
        await full.wait()
        await asyncio.sleep(0.002)
        running -= 1
        handled += 1
        await delivery.ack()
        if handled == total:
            done.set()

    subscription = await broker.consume(queue, handler, prefetch=prefetch)
    async with asyncio.timeout(5):
        await done.wait()
    assert peak == prefetch
    await subscription.cancel()


async def test_a_handler_that_raises_gets_the_message_again_marked_redelivered(
    kit: Kit, broker: Broker
) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    await broker.publish(queue, OutgoingMessage(body=b"flaky", message_id="f-1"))
    seen: list[bool] = []
    settled = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.redelivered)
        if len(seen) == 1:
            raise RuntimeError("handler failed")
        await delivery.ack()
        settled.set()

    subscription = await broker.consume(queue, handler, prefetch=1)
    async with asyncio.timeout(5):
        await settled.wait()
    assert seen == [False, True]
    await subscription.cancel()
    assert await broker.queue_depth(queue) == 0


async def test_reject_without_requeue_dead_letters(kit: Kit, broker: Broker) -> None:
    work, dead = kit.queue("work"), kit.queue("dead")
    await broker.declare_queue(dead)
    await broker.declare_queue(work, dead_letter_to=dead)
    await broker.publish(work, OutgoingMessage(body=b"bad", message_id="b-1", headers={"k": 1}))
    delivery = await broker.get(work)
    assert delivery is not None
    await delivery.reject(requeue=False)
    subscription, inbox = await collect(broker, dead)
    moved = await inbox.next()
    assert (moved.body, moved.message_id, moved.headers["k"]) == (b"bad", "b-1", 1)
    assert moved.headers["x-first-death-reason"] == "rejected"
    assert moved.headers["x-first-death-queue"] == work
    [death] = deaths(moved)
    assert (death["reason"], death["queue"], death["count"]) == ("rejected", work, 1)
    await subscription.cancel()
    assert await broker.queue_depth(work) == 0


async def test_reject_without_requeue_and_no_dead_letter_queue_drops(
    kit: Kit, broker: Broker
) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    await broker.publish(queue, OutgoingMessage(body=b"bad"))
    delivery = await broker.get(queue)
    assert delivery is not None
    await delivery.reject(requeue=False)
    assert await broker.get(queue) is None


async def test_a_ttl_queue_dead_letters_to_its_target_after_the_ttl(
    kit: Kit, broker: Broker
) -> None:
    work, delay = kit.queue("work"), kit.queue("delay")
    await broker.declare_queue(work)
    await broker.declare_queue(delay, dead_letter_to=work, message_ttl_s=0.2)
    subscription, inbox = await collect(broker, work)
    started = time.monotonic()
    await broker.publish(delay, OutgoingMessage(body=b"later", message_id="d-1", headers={"a": 2}))
    assert await broker.queue_depth(delay) == 1
    arrived = await inbox.next()
    waited = time.monotonic() - started
    assert 0.19 <= waited < 2.0
    assert (arrived.body, arrived.message_id, arrived.headers["a"]) == (b"later", "d-1", 2)
    assert arrived.headers["x-first-death-reason"] == "expired"
    assert arrived.headers["x-first-death-queue"] == delay
    assert deaths(arrived)[0]["reason"] == "expired"
    assert await broker.queue_depth(delay) == 0
    await subscription.cancel()


async def test_a_message_expiration_dead_letters_it(kit: Kit, broker: Broker) -> None:
    work, dead = kit.queue("work"), kit.queue("dead")
    await broker.declare_queue(dead)
    await broker.declare_queue(work, dead_letter_to=dead)
    subscription, inbox = await collect(broker, dead)
    started = time.monotonic()
    await broker.publish(work, OutgoingMessage(body=b"brief", expiration_s=0.2))
    arrived = await inbox.next()
    assert 0.19 <= time.monotonic() - started < 2.0
    assert arrived.body == b"brief"
    assert arrived.headers["x-first-death-reason"] == "expired"
    assert deaths(arrived)[0]["original-expiration"] == "200"
    await subscription.cancel()


@pytest.mark.parametrize("dead_letter", [True, False], ids=["dead-letters", "drops"])
async def test_the_delivery_limit_ends_redeliveries(kit: Kit, dead_letter: bool) -> None:
    if not kit.has_delivery_limit:
        pytest.skip("classic queues have no delivery limit")
    broker = await kit.broker(delivery_limit=2)
    work, dead = kit.queue("work"), kit.queue("dead")
    await broker.declare_queue(dead)
    await broker.declare_queue(work, dead_letter_to=dead if dead_letter else None)
    seen: list[bool] = []
    marker = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        if delivery.body == b"marker":
            await delivery.ack()
            marker.set()
            return
        seen.append(delivery.redelivered)
        await delivery.reject(requeue=True)

    subscription = await broker.consume(work, handler, prefetch=1)
    dead_subscription, dead_inbox = await collect(broker, dead)
    await broker.publish(work, OutgoingMessage(body=b"poison", message_id="p-1"))
    if dead_letter:
        moved = await dead_inbox.next()
        assert moved.message_id == "p-1"
        assert moved.headers["x-first-death-reason"] == "delivery_limit"
    else:
        await eventually(lambda: len(seen) == 3)
        await broker.publish(work, OutgoingMessage(body=b"marker"))
        async with asyncio.timeout(5):
            await marker.wait()
        await eventually(lambda: _depth_is(broker, work, 0), within_s=2)
        assert await broker.queue_depth(dead) == 0
    # The first delivery and delivery_limit redeliveries, then no more.
    assert seen == [False, True, True]
    assert await broker.queue_depth(work) == 0
    await subscription.cancel()
    await dead_subscription.cancel()


async def test_cancel_hands_unacked_messages_back(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    for n in range(3):
        await broker.publish(queue, OutgoingMessage(body=b"%d" % n, message_id=f"u{n}"))
    held: list[Delivery] = []
    interrupted = 0
    all_held = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        nonlocal interrupted
        held.append(delivery)
        if len(held) == 3:
            all_held.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            interrupted += 1
            raise

    subscription = await broker.consume(queue, handler, prefetch=5)
    async with asyncio.timeout(5):
        await all_held.wait()
    assert await broker.queue_depth(queue) == 0
    await subscription.cancel()
    assert not subscription.active
    assert interrupted == 3
    await eventually(lambda: _depth_is(broker, queue, 3))
    # Settling a delivery its consumer gave back does nothing (and does not fail).
    await held[0].ack()
    await held[1].reject(requeue=False)
    assert await broker.queue_depth(queue) == 3
    again = [await broker.get(queue) for _ in range(3)]
    assert all(d is not None and d.redelivered for d in again)
    assert sorted(d.message_id or "" for d in again if d is not None) == ["u0", "u1", "u2"]
    for delivery in again:
        assert delivery is not None
        await delivery.ack()


async def _depth_is(broker: Broker, queue: str, depth: int) -> bool:
    return await broker.queue_depth(queue) == depth


async def test_queue_depth_counts_ready_messages_only(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    assert await broker.queue_depth(queue) == 0
    for _ in range(3):
        await broker.publish(queue, OutgoingMessage(body=b"x"))
    assert await broker.queue_depth(queue) == 3
    taken = await broker.get(queue)
    assert taken is not None
    assert await broker.queue_depth(queue) == 2
    await taken.reject(requeue=True)
    await eventually(lambda: _depth_is(broker, queue, 3))


async def test_settling_twice_is_a_no_op(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    seen: list[tuple[bytes, bool]] = []
    first_settled = asyncio.Event()
    marker = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        seen.append((delivery.body, delivery.redelivered))
        if delivery.body == b"first":
            await delivery.ack()
            await delivery.ack()
            await delivery.reject(requeue=True)
            first_settled.set()
        else:
            await first_settled.wait()
            await delivery.ack()
            if delivery.body == b"marker":
                marker.set()

    subscription = await broker.consume(queue, handler, prefetch=2)
    await broker.publish(queue, OutgoingMessage(body=b"first"))
    await broker.publish(queue, OutgoingMessage(body=b"second"))
    await first_settled.wait()
    await broker.publish(queue, OutgoingMessage(body=b"marker"))
    async with asyncio.timeout(5):
        await marker.wait()
    # Had a second ack reached RabbitMQ, it would have closed the channel ("unknown
    # delivery tag") and handed "second" out again.
    assert seen == [(b"first", False), (b"second", False), (b"marker", False)]
    assert subscription.active
    await subscription.cancel()
    assert await broker.queue_depth(queue) == 0


async def test_deleting_a_queue(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    await broker.publish(queue, OutgoingMessage(body=b"x"))
    subscription, _ = await collect(broker, queue, ack=False)
    assert subscription.active
    await broker.delete_queue(queue)
    # The broker cancels consumers of a deleted queue, and says so.
    await eventually(lambda: not subscription.active)
    with pytest.raises(PublishError):
        await broker.publish(queue, OutgoingMessage(body=b"x"))
    with pytest.raises(BrokerError):
        await broker.queue_depth(queue)
    await broker.delete_queue(queue)
    await broker.delete_queue(kit.queue("never-declared"))
    await subscription.cancel()


async def test_a_missing_queue_cannot_be_consumed_or_measured(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("missing")

    async def handler(delivery: Delivery) -> None:
        await delivery.ack()

    with pytest.raises(BrokerError, match="no such queue"):
        await broker.consume(queue, handler, prefetch=1)
    # Nothing to take yet: tools poll queues the roles declare on first use.
    assert await broker.get(queue) is None
    with pytest.raises(BrokerError):
        await broker.queue_depth(queue)
    # None of that broke the broker.
    await broker.declare_queue(queue)
    await broker.publish(queue, OutgoingMessage(body=b"x"))
    assert await broker.queue_depth(queue) == 1


async def test_declaring_with_other_arguments_raises_and_the_broker_stays_usable(
    kit: Kit, broker: Broker
) -> None:
    queue, dead = kit.queue("work"), kit.queue("dead")
    await broker.declare_queue(dead)
    await broker.declare_queue(queue)
    await broker.declare_queue(queue)
    # Publishes in flight while a declare fails are not disturbed by it.
    outcome = await asyncio.gather(
        *(broker.publish(queue, OutgoingMessage(body=b"%d" % n)) for n in range(30)),
        broker.declare_queue(queue, message_ttl_s=1.0),
        return_exceptions=True,
    )
    assert all(r is None for r in outcome[:30])
    assert isinstance(outcome[30], BrokerError)
    assert queue in str(outcome[30])
    with pytest.raises(BrokerError, match="already exists"):
        await broker.declare_queue(queue, dead_letter_to=dead)
    await broker.declare_queue(queue)
    await broker.publish(queue, OutgoingMessage(body=b"after"))
    assert await broker.queue_depth(queue) == 31
    assert broker.is_connected


async def test_after_stop_nothing_is_published(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    subscription, _ = await collect(broker, queue)
    assert (broker.is_connected, subscription.active) == (True, True)
    await broker.stop()
    assert (broker.is_connected, subscription.active) == (False, False)
    with pytest.raises(PublishError):
        await broker.publish(queue, OutgoingMessage(body=b"late"))
    with pytest.raises(BrokerError):
        await broker.get(queue)


async def test_browsing_shows_messages_in_order_and_leaves_them(kit: Kit, broker: Broker) -> None:
    queue = kit.queue("work")
    assert await broker.browse(queue, limit=5) == []  # not declared yet: nothing to see
    # Browsing counts as a delivery on RabbitMQ: a browsed queue gets a high limit.
    await broker.declare_queue(queue, delivery_limit=1000)
    await broker.publish(queue, full_message("m-1"))
    for n in range(2, 5):
        await broker.publish(queue, OutgoingMessage(body=b"%d" % n, message_id=f"m-{n}"))
    for _ in range(3):  # more browses than the broker's default limit would survive
        seen = await broker.browse(queue, limit=3)
        assert [m.message_id for m in seen] == ["m-1", "m-2", "m-3"]
        await eventually(lambda: _depth_is(broker, queue, 4))
    first = seen[0]
    assert (first.body, first.correlation_id, first.type) == (b"\x00\xffnot utf-8 \xc3", "c-1",
                                                              "RCMR_IN010000UK05")  # fmt: skip
    assert {key: first.headers[key] for key in HEADERS} == HEADERS
    assert [m.message_id for m in await broker.browse(queue, limit=10)] == [
        "m-1", "m-2", "m-3", "m-4"]  # fmt: skip
    taken = [await broker.get(queue) for _ in range(4)]
    assert [d.message_id for d in taken if d is not None] == ["m-1", "m-2", "m-3", "m-4"]
    for delivery in taken:
        assert delivery is not None
        await delivery.ack()
    with pytest.raises(ValueError, match="limit"):
        await broker.browse(queue, limit=0)


async def test_a_graceful_cancel_lets_running_handlers_settle_and_takes_nothing_new(
    kit: Kit, broker: Broker
) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    started = asyncio.Event()
    release = asyncio.Event()
    handled: list[bytes] = []

    async def handler(delivery: Delivery) -> None:
        handled.append(delivery.body)
        started.set()
        await release.wait()
        await delivery.ack()

    subscription = await broker.consume(queue, handler, prefetch=4)
    await broker.publish(queue, OutgoingMessage(body=b"in flight"))
    async with asyncio.timeout(5):
        await started.wait()
    cancelling = asyncio.create_task(subscription.cancel(grace_s=30))
    await eventually(lambda: not subscription.active)
    await broker.publish(queue, OutgoingMessage(body=b"after the cancel"))
    await asyncio.sleep(0.2)  # room for a wrong delivery to arrive
    assert not cancelling.done()
    release.set()
    async with asyncio.timeout(10):
        await cancelling
    assert handled == [b"in flight"]
    # The in-flight message was acked, not handed back; the new one waits for a consumer.
    await eventually(lambda: _depth_is(broker, queue, 1))
    left = await broker.get(queue)
    assert left is not None
    assert (left.body, left.redelivered) == (b"after the cancel", False)
    await left.ack()


async def test_a_handler_outliving_the_grace_is_cancelled_and_its_message_returns(
    kit: Kit, broker: Broker
) -> None:
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    started = asyncio.Event()
    interrupted = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            interrupted.set()
            raise

    subscription = await broker.consume(queue, handler, prefetch=1)
    await broker.publish(queue, OutgoingMessage(body=b"slow", message_id="s-1"))
    async with asyncio.timeout(5):
        await started.wait()
    await subscription.cancel(grace_s=0.2)
    assert interrupted.is_set()
    await eventually(lambda: _depth_is(broker, queue, 1))
    again = await broker.get(queue)
    assert again is not None
    assert (again.message_id, again.redelivered) == ("s-1", True)
    await again.ack()


async def test_a_queue_can_have_its_own_delivery_limit(kit: Kit) -> None:
    if not kit.has_delivery_limit:
        pytest.skip("classic queues have no delivery limit")
    broker = await kit.broker(delivery_limit=5)
    low, high = kit.queue("low"), kit.queue("high")
    await broker.declare_queue(low, delivery_limit=1)
    await broker.declare_queue(high)
    with pytest.raises(BrokerError, match="already exists"):
        await broker.declare_queue(low)
    for queue in (low, high):
        await broker.publish(queue, OutgoingMessage(body=b"x"))
        for _ in range(2):
            delivery = await broker.get(queue)
            assert delivery is not None
            await delivery.reject(requeue=True)
    # low allowed one redelivery and dropped the message; high (limit 5) still has it.
    await eventually(lambda: _depth_is(broker, low, 0))
    await eventually(lambda: _depth_is(broker, high, 1))


async def test_acks_in_any_order_settle_every_message_exactly_as_asked(
    kit: Kit, broker: Broker
) -> None:
    # Acks may be batched: whatever order handlers finish in, each message ends as its
    # handler said (acked, or rejected to the dead-letter queue) and none comes back.
    work, dead = kit.queue("work"), kit.queue("dead")
    await broker.declare_queue(dead)
    await broker.declare_queue(work, dead_letter_to=dead)
    total = 60
    for n in range(total):
        await broker.publish(work, OutgoingMessage(body=b"%d" % n, message_id=f"o{n}"))
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        n = int(delivery.body)
        # Later messages finish first; every seventh is rejected.
        await asyncio.sleep(0.001 * ((total - n) % 11))
        if n % 7 == 0:
            await delivery.reject(requeue=False)
        else:
            await delivery.ack()
        seen.append(delivery.message_id or "")
        if len(seen) == total:
            done.set()

    subscription = await broker.consume(work, handler, prefetch=16)
    async with asyncio.timeout(10):
        await done.wait()
    await subscription.cancel()
    await eventually(lambda: _depth_is(broker, dead, len(range(0, total, 7))))
    assert await broker.queue_depth(work) == 0
    assert sorted(seen) == sorted(f"o{n}" for n in range(total))
    dead_ids = set()
    while (delivery := await broker.get(dead)) is not None:
        dead_ids.add(delivery.message_id)
        await delivery.ack()
    assert dead_ids == {f"o{n}" for n in range(0, total, 7)}


async def test_a_slow_delivery_does_not_hold_back_the_acks_of_those_after_it(
    kit: Kit, broker: Broker
) -> None:
    # With prefetch 3 and the first delivery held, the rest can only all arrive if the
    # broker hears of their acks while the first is still unsettled.
    queue = kit.queue("work")
    await broker.declare_queue(queue)
    for n in range(12):
        await broker.publish(queue, OutgoingMessage(body=b"%d" % n))
    release = asyncio.Event()
    others_done = asyncio.Event()
    handled: list[int] = []

    async def handler(delivery: Delivery) -> None:
        n = int(delivery.body)
        if n == 0:
            await release.wait()
        await delivery.ack()
        handled.append(n)
        if len(handled) == 11 and 0 not in handled:
            others_done.set()

    subscription = await broker.consume(queue, handler, prefetch=3)
    async with asyncio.timeout(5):
        await others_done.wait()
    release.set()
    await eventually(lambda: len(handled) == 12)
    await subscription.cancel()
    assert await broker.queue_depth(queue) == 0


async def _gone(probe: Broker, queue: str) -> bool:
    # By publishing: a publish does not count as using a queue, as a declare (even a
    # passive one, which measuring its depth is) does for classic queues. The probe is its
    # own connection because RabbitMQ 3.10 closes a connection (INTERNAL_ERROR) that
    # publishes to a quorum queue while the queue is being deleted; a probe that lost its
    # link says nothing, so it asks again.
    try:
        await probe.publish(queue, OutgoingMessage(body=b"is it there?"))
    except Unroutable:
        return True
    except PublishError:
        return False
    return False


async def test_an_expiring_queue_lives_while_consumed_and_goes_once_unused(
    kit: Kit, broker: Broker
) -> None:
    kept, unused = kit.queue("kept"), kit.queue("unused")
    # A second connection to the same RabbitMQ (the in-memory broker is only itself).
    probe = await kit.broker() if kit.rabbitmq else broker
    await broker.declare_queue(kept, expires_s=0.5)
    await broker.declare_queue(unused, expires_s=0.5)
    subscription, inbox = await collect(broker, kept)
    # RabbitMQ looks for unused queues every few seconds, not at the moment they expire.
    await eventually(lambda: _gone(probe, unused), within_s=30)
    # The consumed one stayed, however long that took.
    await broker.publish(kept, OutgoingMessage(body=b"still here"))
    assert (await inbox.next()).body == b"still here"
    await subscription.cancel()
    await eventually(lambda: _gone(probe, kept), within_s=30)
    # Declared again, it is a new, empty queue; with another expiry, it is refused.
    await broker.declare_queue(kept, expires_s=0.5)
    assert await broker.queue_depth(kept) == 0
    with pytest.raises(BrokerError, match="already exists"):
        await broker.declare_queue(kept, expires_s=60)
