"""The dead-letter queue as operators see it: what is there and why, and replaying it.

A replayed message goes back on the outbound queue with its message id (so the inbound
MHS still drops it if it was delivered after all), its attempt count reset and its
persist duration starting again; it leaves the dead-letter queue only once the broker has
confirmed it on the outbound queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from mhs.broker import Broker, BrokerError, Delivery, HeaderValue, QueuedMessage
from mhs.messages.copies import carried_headers, onward
from mhs.messages.queues import declare_outbound
from mhs.reliability.headers import (
    ACCEPTED_AT,
    ATTEMPTS,
    DEAD_LETTERED_AT,
    FIRST_ATTEMPT_AT,
    LAST_ATTEMPT_AT,
    LAST_ERROR,
    OUTCOME,
    REASON,
    REPLAYED_AT,
    REPLAYS,
    REPLY_TO,
    header_number,
    header_time,
    time_header,
)
from mhs.settings import Settings

# Headers that describe one trip to the dead-letter queue; a replay starts without them.
_TRIP = frozenset(
    {
        ATTEMPTS,
        FIRST_ATTEMPT_AT,
        LAST_ATTEMPT_AT,
        LAST_ERROR,
        OUTCOME,
        REASON,
        ACCEPTED_AT,
        DEAD_LETTERED_AT,
        REPLAYED_AT,
        # The request held for this trip's outcome was answered long ago.
        REPLY_TO,
    }
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of the dead-letter queue, read from its headers and body."""

    message_id: str | None
    outcome: str
    reason: str
    attempts: int | None
    last_error: str | None
    accepted_at: float | None
    first_attempt_at: float | None
    last_attempt_at: float | None
    dead_lettered_at: float | None
    replays: int
    interaction_id: str | None
    from_asid: str | None
    to_asid: str | None
    headers: Mapping[str, HeaderValue]
    body: bytes

    @classmethod
    def of(cls, message: QueuedMessage) -> DeadLetter:
        headers = message.headers
        outcome = headers.get(OUTCOME)
        reason = headers.get(REASON)
        if outcome is None:
            # RabbitMQ put it there itself (over the outbound queue's delivery limit).
            outcome = headers.get("x-first-death-reason") or "unknown"
            reason = (
                reason or f"dead-lettered by RabbitMQ from {headers.get('x-first-death-queue')}"
            )
        attempts = header_number(headers.get(ATTEMPTS))
        text = headers.get(LAST_ERROR)
        return cls(
            message_id=message.message_id,
            outcome=str(outcome),
            reason=str(reason or ""),
            attempts=None if attempts is None else int(attempts),
            last_error=None if text is None else str(text),
            accepted_at=header_time(headers.get(ACCEPTED_AT)),
            first_attempt_at=header_time(headers.get(FIRST_ATTEMPT_AT)),
            last_attempt_at=header_time(headers.get(LAST_ATTEMPT_AT)),
            dead_lettered_at=header_time(headers.get(DEAD_LETTERED_AT)),
            replays=int(header_number(headers.get(REPLAYS)) or 0),
            interaction_id=_text(headers.get("interaction-id")) or message.type,
            from_asid=_text(headers.get("from-asid")),
            to_asid=_text(headers.get("to-asid")),
            headers=dict(headers),
            body=message.body,
        )

    def summary(self) -> dict[str, Any]:
        """Everything but the body, for printing (the payload is clinical: not shown)."""
        data: dict[str, Any] = {
            "message_id": self.message_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "accepted_at": self.accepted_at,
            "first_attempt_at": self.first_attempt_at,
            "last_attempt_at": self.last_attempt_at,
            "dead_lettered_at": self.dead_lettered_at,
            "replays": self.replays,
            "interaction_id": self.interaction_id,
            "from_asid": self.from_asid,
            "to_asid": self.to_asid,
            "body_bytes": len(self.body),
        }
        return data

    def record_fields(self) -> dict[str, Any]:
        """The queued record's fields without its payload and attachments."""
        try:
            record = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return {}
        if not isinstance(record, dict):
            return {}
        return {k: v for k, v in record.items() if k not in ("payload", "attachments")}


def _text(value: HeaderValue) -> str | None:
    return None if value is None else str(value)


def replayed(delivery: Delivery, *, now: float) -> dict[str, HeaderValue]:
    """The headers of a replayed message: the original ones, a fresh start, one more replay."""
    headers = {k: v for k, v in carried_headers(delivery.headers).items() if k not in _TRIP}
    headers[REPLAYED_AT] = time_header(now)
    headers[REPLAYS] = int(header_number(delivery.headers.get(REPLAYS)) or 0) + 1
    return headers


class DeadLetters:
    """List, show and replay the entries of one deployment's dead-letter queue."""

    def __init__(self, broker: Broker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings

    async def prepare(self) -> None:
        """Declare the queues as the roles do (replay publishes to the outbound queue)."""
        await declare_outbound(self.broker, self.settings)

    async def depth(self) -> int:
        return await self.broker.queue_depth(self.settings.dead_letter_queue)

    async def browse(self, *, limit: int) -> list[DeadLetter]:
        queued = await self.broker.browse(self.settings.dead_letter_queue, limit=limit)
        return [DeadLetter.of(message) for message in queued]

    async def find(self, message_id: str) -> list[DeadLetter]:
        """Every entry for ``message_id`` (normally one)."""
        wanted = message_id.upper()
        everything = await self.browse(limit=max(1, await self.depth()))
        return [e for e in everything if (e.message_id or "").upper() == wanted]

    async def replay(self, message_id: str) -> int:
        """Replay the entries for ``message_id``; how many there were."""
        wanted = message_id.upper()
        return await self._replay(lambda d: (d.message_id or "").upper() == wanted)

    async def replay_all(self) -> int:
        """Replay every entry there is now (not ones that arrive meanwhile)."""
        return await self._replay(lambda _: True)

    async def _replay(self, chosen: Callable[[Delivery], bool]) -> int:
        queue = self.settings.dead_letter_queue
        held: list[Delivery] = []
        replayed_count = 0
        try:
            # Walk the queue once: every message taken stays ours (unacked) until the end,
            # so none is met twice and none is lost if this process dies half way.
            for _ in range(await self.depth()):
                delivery = await self.broker.get(queue)
                if delivery is None:
                    break
                if not chosen(delivery):
                    held.append(delivery)
                    continue
                try:
                    await self.broker.publish(
                        self.settings.outbound_queue,
                        onward(delivery, replayed(delivery, now=time.time())),
                    )
                except BrokerError:
                    held.append(delivery)
                    raise
                await delivery.ack()
                replayed_count += 1
        finally:
            for delivery in held:
                await delivery.reject(requeue=True)
        return replayed_count
