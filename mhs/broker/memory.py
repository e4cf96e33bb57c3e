"""The embedded broker: RabbitMQ's queue semantics inside one process, for trying the product.

Queues behave like quorum queues (or classic ones, without the delivery limit): publishing
to an undeclared queue fails, rejected and expired messages move to the dead-letter queue,
expiry is checked at the head of the queue on a timer, and messages last as long as the
process. Everything runs on the event loop: no threads and no polling.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Literal

from mhs.broker.base import (
    Broker,
    BrokerError,
    Delivery,
    Handler,
    HeaderValue,
    OutgoingMessage,
    PublishError,
    QueuedMessage,
    Subscription,
    Unroutable,
)
from mhs.broker.codec import amqp_timestamp, expiration_ms, outgoing_headers, queue_ttl_ms
from mhs.broker.memory_queue import (
    MemoryDelivery,
    MemorySubscription,
    Message,
    Queue,
    delivered_headers,
)


class MemoryBroker(Broker):
    """In-process queues with the same contract as the RabbitMQ transport."""

    def __init__(
        self, *, queue_type: Literal["quorum", "classic"] = "quorum", delivery_limit: int = 20
    ) -> None:
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        # Classic queues have no delivery limit and add no x-delivery-count, as in RabbitMQ.
        self._quorum = queue_type == "quorum"
        self._delivery_limit = delivery_limit
        self._queues: dict[str, Queue] = {}
        self._subscriptions: set[MemorySubscription] = set()
        self._running = False

    async def start(self) -> None:
        self._running = True
        for queue in list(self._queues.values()):
            self._pump(queue)

    async def stop(self) -> None:
        self._running = False
        for subscription in list(self._subscriptions):
            await subscription.cancel()
        for queue in list(self._queues.values()):
            self._hand_back(queue, queue.outstanding)
            if queue.timer is not None:
                queue.timer.cancel()
                queue.timer = None

    @property
    def is_connected(self) -> bool:
        return self._running

    async def declare_queue(
        self,
        name: str,
        *,
        dead_letter_to: str | None = None,
        message_ttl_s: float | None = None,
        delivery_limit: int | None = None,
        expires_s: float | None = None,
    ) -> None:
        self._require_running()
        if delivery_limit is not None and delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        ttl = queue_ttl_ms(message_ttl_s)
        expires = queue_ttl_ms(expires_s)
        limit = (delivery_limit or self._delivery_limit) if self._quorum else None
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(name, dead_letter_to, ttl, limit)
            queue.expires_ms = expires
        elif (queue.dead_letter_to, queue.ttl_ms, queue.delivery_limit, queue.expires_ms) != (
            dead_letter_to,
            ttl,
            limit,
            expires,
        ):
            raise BrokerError(
                f"cannot declare queue {name!r} with dead_letter_to={dead_letter_to!r}, "
                f"message_ttl_s={message_ttl_s!r}, delivery_limit={limit!r}, "
                f"expires_s={expires_s!r}: it already exists with "
                f"dead_letter_to={queue.dead_letter_to!r}, message_ttl_ms={queue.ttl_ms!r}, "
                f"delivery_limit={queue.delivery_limit!r}, expires_ms={queue.expires_ms!r}"
            )
        self._used(queue)

    async def publish(self, queue: str, message: OutgoingMessage) -> None:
        if not self._running:
            raise PublishError(f"cannot publish to {queue!r}: the broker is stopped")
        target = self._queues.get(queue)
        if target is None:
            raise Unroutable(f"unroutable: no queue named {queue!r}")
        self._enqueue(
            target,
            Message(
                body=message.body,
                message_id=message.message_id or uuid.uuid4().hex,
                correlation_id=message.correlation_id,
                headers=outgoing_headers(message.headers) or {},
                content_type=message.content_type,
                type=message.type,
                app_id=message.app_id,
                timestamp=amqp_timestamp(message.timestamp),
                expiration_ms=expiration_ms(message.expiration_s),
            ),
        )

    async def consume(self, queue: str, handler: Handler, *, prefetch: int) -> Subscription:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        target = self._existing(queue, "consume")
        subscription = MemorySubscription(self, target, handler, prefetch)
        target.consumers.append(subscription)
        self._subscriptions.add(subscription)
        self._used(target)
        self._pump(target)
        return subscription

    async def get(self, queue: str) -> Delivery | None:
        self._require_running()
        target = self._queues.get(queue)
        if target is None:
            return None
        self._used(target)
        self._pump(target)
        if not target.ready:
            return None
        delivery = MemoryDelivery(self, target, target.ready.popleft(), target.outstanding)
        target.outstanding[delivery] = None
        self._schedule_expiry(target)
        return delivery

    async def browse(self, queue: str, *, limit: int) -> list[QueuedMessage]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._require_running()
        target = self._queues.get(queue)
        if target is None:
            return []
        self._pump(target)
        return [
            QueuedMessage(
                body=message.body,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                headers=dict(self.delivered_headers(message)),
                content_type=message.content_type,
                type=message.type,
                app_id=message.app_id,
                timestamp=message.timestamp,
            )
            for message in list(target.ready)[:limit]
        ]

    async def queue_depth(self, queue: str) -> int:
        target = self._existing(queue, "read the depth of")
        self._pump(target)
        return len(target.ready)

    async def delete_queue(self, name: str) -> None:
        self._delete(name)

    def _delete(self, name: str) -> None:
        queue = self._queues.pop(name, None)
        if queue is None:
            return
        queue.deleted = True
        for timer in (queue.timer, queue.unused_timer):
            if timer is not None:
                timer.cancel()
        # As RabbitMQ does, the broker cancels the consumers; their acks become no-ops.
        for subscription in queue.consumers:
            subscription.lost = True
            subscription.unacked.clear()
        queue.consumers.clear()
        queue.outstanding.clear()
        queue.ready.clear()

    # Called by deliveries and subscriptions.

    def settle(self, delivery: MemoryDelivery, *, requeue: bool | None) -> None:
        """Ack (``requeue=None``) or reject a delivery; later calls do nothing."""
        if delivery.settled:
            return
        delivery.settled = True
        if delivery not in delivery.holder:
            return  # already handed back: its consumer was cancelled or the queue deleted
        del delivery.holder[delivery]
        queue = delivery.queue
        if requeue is True:
            self._return(queue, delivery.message)
        elif requeue is False:
            self._dead_letter(queue, delivery.message, "rejected")
        self._pump(queue)

    def detach(self, subscription: MemorySubscription) -> None:
        self._subscriptions.discard(subscription)
        queue = subscription.queue
        if subscription in queue.consumers:
            queue.consumers.remove(subscription)
        self._hand_back(queue, subscription.unacked)
        self._used(queue)

    def delivered_headers(self, message: Message) -> Mapping[str, HeaderValue]:
        return delivered_headers(message, count_deliveries=self._quorum)

    # Queue mechanics.

    def _enqueue(self, queue: Queue, message: Message) -> None:
        ttls = [ttl for ttl in (queue.ttl_ms, message.expiration_ms) if ttl is not None]
        if ttls:
            message.expires_at = asyncio.get_running_loop().time() + min(ttls) / 1000
        queue.ready.append(message)
        self._pump(queue)

    def _pump(self, queue: Queue) -> None:
        """Expire what is due at the head, then deliver while consumers have room."""
        if not self._running or queue.deleted:
            return
        now = asyncio.get_running_loop().time()
        ready = queue.ready
        while ready:
            head = ready[0]
            if head.expires_at is not None and head.expires_at < now:
                ready.popleft()
                self._dead_letter(queue, head, "expired")
                continue
            consumer = queue.take_consumer()
            if consumer is None:
                break
            ready.popleft()
            delivery = MemoryDelivery(self, queue, head, consumer.unacked)
            consumer.unacked[delivery] = None
            consumer.start(delivery)
        self._schedule_expiry(queue)

    def _schedule_expiry(self, queue: Queue) -> None:
        due = queue.ready[0].expires_at if queue.ready else None
        timer = queue.timer
        if timer is not None and (due is None or timer.when() != due):
            timer.cancel()
            queue.timer = timer = None
        if due is not None and timer is None:
            queue.timer = asyncio.get_running_loop().call_at(due, self._expire, queue)

    def _expire(self, queue: Queue) -> None:
        queue.timer = None
        # Past the due time now, so the head is strictly older than the loop's clock.
        self._pump(queue)

    def _used(self, queue: Queue) -> None:
        """Start the queue's unused time again (queues declared with ``expires_s``): it is
        deleted once it has had no consumer for that long."""
        if queue.unused_timer is not None:
            queue.unused_timer.cancel()
            queue.unused_timer = None
        if queue.expires_ms is None or queue.consumers or queue.deleted:
            return
        queue.unused_timer = asyncio.get_running_loop().call_later(
            queue.expires_ms / 1000, self._delete, queue.name
        )

    def _return(self, queue: Queue, message: Message) -> None:
        """Put a message back at the head (rejected with requeue, or its consumer left)."""
        message.delivery_count += 1
        if queue.delivery_limit is not None and message.delivery_count > queue.delivery_limit:
            self._dead_letter(queue, message, "delivery_limit")
            return
        message.redelivered = True
        queue.ready.appendleft(message)

    def _hand_back(self, queue: Queue, holder: dict[MemoryDelivery, None]) -> None:
        deliveries = list(holder)
        holder.clear()
        if queue.deleted:
            return
        # Back to the head in their original order.
        for delivery in reversed(deliveries):
            self._return(queue, delivery.message)
        self._pump(queue)

    def _dead_letter(self, queue: Queue, message: Message, reason: str) -> None:
        target = self._queues.get(queue.dead_letter_to) if queue.dead_letter_to else None
        # Without a target the message is dropped, as RabbitMQ drops what it cannot route.
        if target is None or (reason != "rejected" and message.is_cycle_to(target.name)):
            return
        self._enqueue(target, message.dead_lettered(queue.name, reason))

    def _existing(self, name: str, doing: str) -> Queue:
        self._require_running()
        queue = self._queues.get(name)
        if queue is None:
            raise BrokerError(f"cannot {doing} {name!r}: no such queue")
        return queue

    def _require_running(self) -> None:
        if not self._running:
            raise BrokerError("the in-memory broker is not running")
