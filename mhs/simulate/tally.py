"""What became of the messages a tool sent, shared by ``mhs inject``, ``mhs simulate`` and
the chaos run: how the sender saw each request (accepted, refused, failed, latency), and
what arrived on the instances' queues, per message id.

The observer reads every instance queue as the instances' own systems would, on its own
broker connection. A delivery the broker hands out again (redelivered) is not a second
arrival; a second publish of the same message id is. A copy marked
``mhs-possible-duplicate`` (an earlier publish of it went unconfirmed) is a *flagged*
duplicate, which the recipient's system can drop; a second unflagged copy is a failure.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mhs.broker import Broker, Delivery, Subscription
from mhs.messages.instance import POSSIBLE_DUPLICATE
from mhs.observe.latency import latency


@dataclass
class Tally:
    """Sends, and arrivals and failure notices by message id; which accepted messages are
    settled."""

    sent: int = 0
    accepted: set[str] = field(default_factory=set)
    refused: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    arrivals: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    notices: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    reasons: Counter[str] = field(default_factory=Counter)
    strangers: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def settled(self, message_id: str) -> bool:
        return message_id in self.arrivals or message_id in self.notices

    def unflagged_duplicate(self, message_id: str) -> bool:
        """More than one copy arrived without the possible-duplicate flag: a failure."""
        return self.arrivals[message_id] - self.flagged[message_id] > 1

    def flagged_duplicate(self, message_id: str) -> bool:
        """More than one copy arrived, every copy after the first flagged."""
        return self.arrivals[message_id] > 1 and not self.unflagged_duplicate(message_id)

    def arrive(self, delivery: Delivery) -> bool:
        """Count what reached an instance's queue; True for a first or later arrival of a
        message (not a failure notice, not the same publish handed out again)."""
        message_id = (delivery.message_id or "").upper()
        outcome = delivery.headers.get("mhs-outcome")
        arrived = False
        if outcome is not None:
            self.notices[message_id].append(str(outcome))
            self.reasons[f"{outcome}: {str(delivery.headers.get('mhs-reason'))[:100]}"] += 1
        elif delivery.redelivered and message_id in self.arrivals:
            pass  # the same publish again (our ack was lost), not a second delivery
        elif message_id:
            self.arrivals[message_id] += 1
            self.flagged[message_id] += int(delivery.headers.get(POSSIBLE_DUPLICATE) is True)
            arrived = True
        else:
            self.strangers += 1
        self._changed.set()
        return arrived

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

    def sending_summary(self) -> dict[str, Any]:
        """How the sends went, as the sender saw them."""
        elapsed = time.perf_counter() - self.started
        return {
            "sent": self.sent,
            "accepted": len(self.accepted),
            "refused": sum(self.refused.values()),
            "failed": sum(self.failed.values()),
            "refused_reasons": dict(self.refused.most_common()),
            "failures": dict(self.failed.most_common()),
            "latency_ms": latency(self.latencies_ms),
            "elapsed_s": round(elapsed, 3),
            "messages_per_s": round(self.sent / elapsed, 1) if elapsed > 0 else 0.0,
        }


class Observer:
    """Consumes the instance queues into a ``Tally``; ``listener`` hears of each delivery
    and whether it counted as an arrival."""

    def __init__(
        self,
        broker: Broker,
        queues: Iterable[str],
        tally: Tally,
        listener: Callable[[Delivery, bool], None] | None = None,
    ) -> None:
        self.broker = broker
        self.queues = list(queues)
        self.tally = tally
        self._listener = listener
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
        arrived = self.tally.arrive(delivery)
        await delivery.ack()
        if self._listener is not None:
            self._listener(delivery, arrived)
