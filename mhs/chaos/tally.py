"""What actually arrived on the instances' queues, per message id.

The observer reads every instance queue as the instances' own systems would, on its own
broker connection (not one the chaos closes). A delivery the broker hands out again
(redelivered) is not a second arrival; a second publish of the same message id is.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from mhs.broker import Broker, Delivery, Subscription


@dataclass
class Tally:
    """Arrivals and failure notices by message id; which accepted messages are settled."""

    accepted: set[str] = field(default_factory=set)
    arrivals: Counter[str] = field(default_factory=Counter)
    notices: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    reasons: Counter[str] = field(default_factory=Counter)
    strangers: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def settled(self, message_id: str) -> bool:
        return message_id in self.arrivals or message_id in self.notices

    def arrive(self, delivery: Delivery) -> None:
        message_id = (delivery.message_id or "").upper()
        outcome = delivery.headers.get("mhs-outcome")
        if outcome is not None:
            self.notices[message_id].append(str(outcome))
            self.reasons[f"{outcome}: {str(delivery.headers.get('mhs-reason'))[:100]}"] += 1
        elif delivery.redelivered and message_id in self.arrivals:
            pass  # the same publish again (our ack was lost), not a second delivery
        elif message_id:
            self.arrivals[message_id] += 1
        else:
            self.strangers += 1
        self._changed.set()

    async def wait_settled(self, message_ids: Iterable[str], *, within_s: float) -> set[str]:
        """Wait until every id has arrived or been reported failed; those that did not."""
        waiting = {m for m in message_ids if not self.settled(m)}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while waiting and loop.time() < deadline:
            self._changed.clear()
            waiting = {m for m in waiting if not self.settled(m)}
            if not waiting:
                break
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await self._changed.wait()
            except TimeoutError:
                break
        return {m for m in waiting if not self.settled(m)}


class Observer:
    """Consumes the instance queues into a ``Tally``."""

    def __init__(self, broker: Broker, queues: Iterable[str], tally: Tally) -> None:
        self.broker = broker
        self.queues = list(queues)
        self.tally = tally
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        for queue in self.queues:
            # Declared as the instance's own system would, before anything is sent to it.
            await self.broker.declare_queue(queue)
            self._subscriptions.append(await self.broker.consume(queue, self._handle, prefetch=256))

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.cancel()

    async def _handle(self, delivery: Delivery) -> None:
        self.tally.arrive(delivery)
        await delivery.ack()
