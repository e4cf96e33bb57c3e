"""The broker contract every transport implements.

Roles talk to each other only through a ``Broker`` and HTTP. Both implementations
(RabbitMQ and in-memory) pass the same contract tests in ``tests/broker``.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

HeaderValue = str | int | float | bool | None

# How long a role waits for RabbitMQ to answer at start before giving up.
START_TIMEOUT_S = 30.0


class BrokerError(Exception):
    """The broker could not do what was asked (not connected, channel closed, ...)."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached at start, or refused our login: the text names the
    broker (password hidden) and what to do."""


class PublishError(BrokerError):
    """A publish was not confirmed: unroutable (no such queue), nacked, or the link is down."""


class Unroutable(PublishError):
    """A publish found no queue of that name."""


class PublishUncertain(PublishError):
    """A publish went out but its confirm did not come back (the connection or channel
    closed, or no answer in time): the message may be on its queue or not. Every other
    ``PublishError`` means it is certainly not there."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message to publish. Always persistent; ``headers`` become AMQP headers.

    Without a ``message_id`` the broker gives the message a random one. ``timestamp``
    travels in whole seconds and arrives in UTC (a naive value is taken as UTC).
    ``expiration_s`` is a per-message TTL, counted from when the message enters a queue.
    A header value that is not a ``HeaderValue`` (or an int beyond 64 bits, or a float
    that 32 bits cannot hold exactly, as AMQP tables carry floats) fails the publish with
    ``PublishError``.

    ``application_properties`` are what an AMQP 1.0 reader of the queue gets as the
    message's application properties: RabbitMQ 3.10's AMQP 1.0 plugin gives it none of the
    AMQP 0-9-1 headers by itself, so the RabbitMQ transport sends them encoded in the
    ``x-amqp-1.0-app-properties`` header, which RabbitMQ's AMQP 1.0 side turns into that
    section, and which deliveries here never show. None: no such section. The in-memory
    broker has no AMQP 1.0 readers and ignores them.
    """

    body: bytes
    message_id: str | None = None
    correlation_id: str | None = None
    headers: Mapping[str, HeaderValue] = field(default_factory=dict)
    content_type: str = "application/json"
    type: str | None = None
    app_id: str | None = None
    timestamp: datetime | None = None
    expiration_s: float | None = None
    application_properties: Mapping[str, str] | None = None


class Delivery(Protocol):
    """One received message. The handler must ``ack`` or ``reject`` it exactly once.

    ``headers`` are the publisher's plus any the broker added, as ``HeaderValue``s: text
    stays text (bytes that are not UTF-8 are decoded with replacement characters),
    numbers, booleans and None stay as they are, and structured values such as RabbitMQ's
    ``x-death`` arrive as JSON text. Settling twice is ignored (the first decision holds),
    and so is settling after the link to the broker was lost: the broker redelivers.
    """

    @property
    def body(self) -> bytes: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, HeaderValue]: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def type(self) -> str | None: ...
    @property
    def app_id(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime | None: ...
    @property
    def redelivered(self) -> bool: ...

    async def ack(self) -> None: ...
    async def reject(self, *, requeue: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message looked at where it waits, without taking it (see ``Broker.browse``)."""

    body: bytes
    message_id: str | None
    correlation_id: str | None
    headers: Mapping[str, HeaderValue]
    content_type: str | None
    type: str | None
    app_id: str | None
    timestamp: datetime | None

    @classmethod
    def of(cls, delivery: Delivery) -> QueuedMessage:
        return cls(
            body=delivery.body,
            message_id=delivery.message_id,
            correlation_id=delivery.correlation_id,
            headers=dict(delivery.headers),
            content_type=delivery.content_type,
            type=delivery.type,
            app_id=delivery.app_id,
            timestamp=delivery.timestamp,
        )


Handler = Callable[[Delivery], Awaitable[None]]


class Subscription(Protocol):
    """A running consumer."""

    @property
    def active(self) -> bool:
        """False once the consumer is cancelled, its queue deleted, or its link lost and not
        (yet) restored; True again once a lost consumer is attached again."""
        ...

    async def cancel(self, *, grace_s: float = 0.0) -> None:
        """Stop receiving; unacked deliveries go back to the queue (marked redelivered)
        and handlers still running are cancelled.

        With ``grace_s``, no new deliveries arrive from the moment of the call, and
        handlers already running get up to ``grace_s`` to finish and settle theirs
        (graceful shutdown) before the rest go back.
        """
        ...


class Broker(abc.ABC):
    """Durable queues with confirmed publishes and manually acknowledged consumers."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect (retrying until connected or the start timeout passes)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close channels and the connection."""

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool:
        """True while the broker link is usable."""

    @abc.abstractmethod
    async def declare_queue(
        self,
        name: str,
        *,
        dead_letter_to: str | None = None,
        message_ttl_s: float | None = None,
        delivery_limit: int | None = None,
        expires_s: float | None = None,
    ) -> None:
        """Declare a durable queue (idempotent).

        ``dead_letter_to`` names a queue that rejected-without-requeue, expired and
        over-the-delivery-limit messages move to, at least once (without it they are
        dropped); ``message_ttl_s`` expires every message after that time (delay queues);
        ``delivery_limit`` replaces the broker's limit for this queue (quorum queues);
        ``expires_s`` deletes the queue, messages and all, once it has had no consumer and
        no ``get`` or declaration for that long (a queue of a process that may die; RabbitMQ
        checks this every few seconds). Declaring an existing queue with other arguments
        raises ``BrokerError``.
        """

    @abc.abstractmethod
    async def publish(self, queue: str, message: OutgoingMessage) -> None:
        """Publish persistently to ``queue`` and wait for the broker's confirm.

        Raises ``PublishError`` when the queue does not exist (mandatory publish
        returned), the broker nacks, the connection is down or lost, or no confirm
        arrives in time. It never fails silently. ``PublishUncertain`` (a ``PublishError``)
        when the message was sent and its confirm was lost: it may have been queued.
        """

    @abc.abstractmethod
    async def consume(self, queue: str, handler: Handler, *, prefetch: int) -> Subscription:
        """Deliver messages from ``queue`` to ``handler`` concurrently, at most
        ``prefetch`` unacknowledged at once. A handler that raises has its delivery
        rejected with requeue; each return counts toward the queue's delivery limit."""

    @abc.abstractmethod
    async def get(self, queue: str) -> Delivery | None:
        """Take one message without waiting; ack or reject it. None if the queue is empty
        or not declared yet (tools poll queues that roles declare on first use)."""

    @abc.abstractmethod
    async def browse(self, queue: str, *, limit: int) -> list[QueuedMessage]:
        """Up to ``limit`` ready messages from the head of ``queue``, left where they are
        (tools looking at the dead-letter queue); empty if the queue is not declared.

        On RabbitMQ the messages are taken and handed back, which counts as a delivery
        toward a quorum queue's delivery limit: give a browsed queue a high limit.
        """

    @abc.abstractmethod
    async def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (not counting unacknowledged ones)."""

    @abc.abstractmethod
    async def delete_queue(self, name: str) -> None:
        """Delete a queue if it exists (tests and tooling)."""
