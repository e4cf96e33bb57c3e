"""The in-memory broker's messages, queues, deliveries and consumers."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from mhs.broker.base import Handler, HeaderValue
from mhs.broker.codec import header_value
from mhs.broker.handlers import run_handler

# Unacknowledged deliveries in the order they were made (a dict is an ordered set).
Holder = dict["MemoryDelivery", None]


class Owner(Protocol):
    """What deliveries and consumers ask of the broker that owns them (MemoryBroker)."""

    @property
    def is_connected(self) -> bool: ...

    def settle(self, delivery: MemoryDelivery, *, requeue: bool | None) -> None: ...

    def detach(self, subscription: MemorySubscription) -> None: ...

    def delivered_headers(self, message: Message) -> Mapping[str, HeaderValue]: ...


@dataclass(slots=True, eq=False)
class Message:
    """A message in one queue, with what RabbitMQ would record about its life so far."""

    body: bytes
    message_id: str
    correlation_id: str | None
    headers: dict[str, HeaderValue]
    content_type: str | None
    type: str | None
    app_id: str | None
    timestamp: datetime | None
    expiration_ms: int | None
    deaths: list[dict[str, Any]] = field(default_factory=list)
    delivery_count: int = 0
    redelivered: bool = False
    expires_at: float | None = None

    def dead_lettered(self, queue: str, reason: str) -> Message:
        """The copy RabbitMQ routes to the dead-letter target: ``x-death`` updated, the
        ``x-first-death-*`` headers set once, and no expiration left to fire again."""
        now = datetime.now(UTC).replace(microsecond=0)
        deaths = [dict(death) for death in self.deaths]
        for index, death in enumerate(deaths):
            if death["queue"] == queue and death["reason"] == reason:
                entry = deaths.pop(index)
                entry["count"] += 1
                entry["time"] = now
                break
        else:
            entry = {"count": 1, "reason": reason, "queue": queue, "time": now,
                     "exchange": "", "routing-keys": [queue]}  # fmt: skip
            if self.expiration_ms is not None:
                entry["original-expiration"] = str(self.expiration_ms)
        deaths.insert(0, entry)
        headers = self.headers
        if not self.deaths:
            headers = {**headers, "x-first-death-exchange": "", "x-first-death-queue": queue,
                       "x-first-death-reason": reason}  # fmt: skip
        return replace(self, headers=headers, expiration_ms=None, deaths=deaths,
                       delivery_count=0, redelivered=False, expires_at=None)  # fmt: skip

    def is_cycle_to(self, queue: str) -> bool:
        """RabbitMQ drops a message dead-lettered back to a queue it already died in,
        unless a consumer rejected it somewhere on the way."""
        for death in self.deaths:
            if death["reason"] == "rejected":
                return False
            if death["queue"] == queue:
                return True
        return False


class Queue:
    """Ready messages in order, the consumers attached, and the expiry timer for the head."""

    __slots__ = ("consumers", "dead_letter_to", "deleted", "delivery_limit", "expires_ms",
                 "name", "next_consumer", "outstanding", "ready", "timer", "ttl_ms",
                 "unused_timer")  # fmt: skip

    def __init__(
        self,
        name: str,
        dead_letter_to: str | None,
        ttl_ms: int | None,
        delivery_limit: int | None = None,
    ) -> None:
        self.name = name
        self.dead_letter_to = dead_letter_to
        self.ttl_ms = ttl_ms
        # None: no limit (classic queues).
        self.delivery_limit = delivery_limit
        self.ready: deque[Message] = deque()
        self.consumers: list[MemorySubscription] = []
        self.next_consumer = 0
        self.outstanding: Holder = {}
        self.timer: asyncio.TimerHandle | None = None
        self.deleted = False
        # Queues declared with expires_s: deleted once unused (no consumer) that long.
        self.expires_ms: int | None = None
        self.unused_timer: asyncio.TimerHandle | None = None

    def take_consumer(self) -> MemorySubscription | None:
        """The next consumer in turn with room under its prefetch."""
        count = len(self.consumers)
        for step in range(count):
            index = (self.next_consumer + step) % count
            consumer = self.consumers[index]
            if len(consumer.unacked) < consumer.prefetch:
                self.next_consumer = (index + 1) % count
                return consumer
        return None


class MemoryDelivery:
    """A message handed to a consumer or a ``get``; settling it twice is a no-op."""

    __slots__ = ("_broker", "_headers", "holder", "message", "queue", "settled")

    def __init__(self, broker: Owner, queue: Queue, message: Message, holder: Holder) -> None:
        self._broker = broker
        self.queue = queue
        self.message = message
        self.holder = holder
        self.settled = False
        self._headers: Mapping[str, HeaderValue] | None = None

    @property
    def body(self) -> bytes:
        return self.message.body

    @property
    def message_id(self) -> str | None:
        return self.message.message_id

    @property
    def correlation_id(self) -> str | None:
        return self.message.correlation_id

    @property
    def headers(self) -> Mapping[str, HeaderValue]:
        if self._headers is None:
            self._headers = self._broker.delivered_headers(self.message)
        return self._headers

    @property
    def content_type(self) -> str | None:
        return self.message.content_type

    @property
    def type(self) -> str | None:
        return self.message.type

    @property
    def app_id(self) -> str | None:
        return self.message.app_id

    @property
    def timestamp(self) -> datetime | None:
        return self.message.timestamp

    @property
    def redelivered(self) -> bool:
        return self.message.redelivered

    async def ack(self) -> None:
        self._broker.settle(self, requeue=None)

    async def reject(self, *, requeue: bool) -> None:
        self._broker.settle(self, requeue=requeue)


class MemorySubscription:
    """A consumer: a handler task per delivery, at most ``prefetch`` unacknowledged."""

    def __init__(self, broker: Owner, queue: Queue, handler: Handler, prefetch: int) -> None:
        self._broker = broker
        self.queue = queue
        self._handler = handler
        self.prefetch = prefetch
        self.unacked: Holder = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.cancelled = False
        self.lost = False

    @property
    def active(self) -> bool:
        return not self.cancelled and not self.lost and self._broker.is_connected

    def start(self, delivery: MemoryDelivery) -> None:
        task = asyncio.get_running_loop().create_task(self._run(delivery))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, delivery: MemoryDelivery) -> None:
        await run_handler(self._handler, delivery, self.queue.name)

    async def cancel(self, *, grace_s: float = 0.0) -> None:
        """Stop consuming; give running handlers up to ``grace_s`` to settle; hand unacked
        deliveries back; cancel handlers still running."""
        if self.cancelled:
            return
        self.cancelled = True
        current = asyncio.current_task()
        if self in self.queue.consumers:
            self.queue.consumers.remove(self)  # no new deliveries from now on
        running = [task for task in self.tasks if task is not current]
        if grace_s > 0 and running:
            await asyncio.wait(running, timeout=grace_s)
        self._broker.detach(self)
        running = [task for task in self.tasks if task is not current]
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


def delivered_headers(message: Message, *, count_deliveries: bool) -> Mapping[str, HeaderValue]:
    """The headers a consumer sees: the publisher's plus what the broker added."""
    extra: dict[str, HeaderValue] = {}
    if message.deaths:
        extra["x-death"] = header_value(message.deaths)
    if count_deliveries and message.delivery_count:
        extra["x-delivery-count"] = message.delivery_count
    return {**message.headers, **extra} if extra else message.headers
