"""Helpers for the broker tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from mhs.broker import Broker, Delivery, Subscription


class Inbox:
    """Deliveries a subscription received, to await one by one."""

    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()

    async def next(self, within_s: float = 5.0) -> Delivery:
        async with asyncio.timeout(within_s):
            return await self.deliveries.get()


async def collect(
    broker: Broker, queue: str, *, prefetch: int = 16, ack: bool = True
) -> tuple[Subscription, Inbox]:
    """Consume ``queue`` into an ``Inbox``, acking each delivery unless ``ack=False``."""
    inbox = Inbox()

    async def handler(delivery: Delivery) -> None:
        if ack:
            await delivery.ack()
        inbox.deliveries.put_nowait(delivery)

    return await broker.consume(queue, handler, prefetch=prefetch), inbox


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], within_s: float = 5.0
) -> None:
    """Wait until ``check`` holds: for effects RabbitMQ applies after answering us."""
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {within_s}s")
        await asyncio.sleep(0.01)
