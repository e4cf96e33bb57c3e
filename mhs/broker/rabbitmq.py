"""The RabbitMQ transport: aio-pika's robust connection, aiormq channels we own.

aio-pika reconnects the connection. Channels are plain aiormq channels that this module
opens again on first use after they closed, so a failed declare or a lost link never
leaves a half-restored channel behind: one long-lived channel with publisher confirms for
publishing, one for declarations and queue queries, one for ``get``, and one per consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import aiormq
from aio_pika.abc import AbstractRobustConnection
from aiormq.abc import AbstractChannel

from mhs.broker.base import (
    START_TIMEOUT_S,
    Broker,
    BrokerError,
    Delivery,
    Handler,
    OutgoingMessage,
    PublishError,
    PublishUncertain,
    QueuedMessage,
    Subscription,
    Unroutable,
)
from mhs.broker.codec import amqp091_headers, expiration_ms, queue_ttl_ms
from mhs.broker.rabbitmq_channels import (
    LINK_ERRORS,
    ChannelSlot,
    reply_text,
    unlogged_attempts,
)
from mhs.broker.rabbitmq_consumer import RabbitDelivery, RabbitSubscription
from mhs.broker.rabbitmq_nodes import Nodes
from mhs.settings import redact_url
from mhs.tasks import stop_task

QueueType = Literal["quorum", "classic"]
_PERSISTENT = 2
_T = TypeVar("_T")


class RabbitMqBroker(Broker):
    """Durable quorum (or classic) queues on RabbitMQ with confirmed, mandatory publishes."""

    def __init__(
        self,
        url: str,
        *,
        connection_name: str,
        queue_type: QueueType = "quorum",
        delivery_limit: int = 20,
        start_timeout_s: float = START_TIMEOUT_S,
        publish_timeout_s: float = 10.0,
        operation_timeout_s: float = 10.0,
        reconnect_interval_s: float = 1.0,
    ) -> None:
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        self._nodes = Nodes(url)
        self._where = redact_url(url)
        self.connection_name = connection_name
        self._queue_type = queue_type
        self._delivery_limit = delivery_limit
        self._start_timeout = start_timeout_s
        self._publish_timeout = publish_timeout_s
        self._timeout = operation_timeout_s
        self._reconnect_interval = reconnect_interval_s
        self._connection: AbstractRobustConnection | None = None
        self._following: asyncio.Task[None] | None = None
        self._stopped = False
        self._publisher = ChannelSlot(lambda: self._open_channel(confirms=True))
        self._control = ChannelSlot(lambda: self._open_channel(confirms=False))
        self._getter = ChannelSlot(lambda: self._open_channel(confirms=False))
        self._subscriptions: set[RabbitSubscription] = set()
        # Queues this broker declared, with their arguments: declaring is idempotent, so a
        # role that declares before every publish pays the round trip only once.
        self._declared: dict[str, dict[str, Any]] = {}
        # aiormq matches a returned (unroutable) message to its publish by message id; two
        # publishes of one id in flight at once could hide a return, so they take turns.
        self._publishing: dict[str, asyncio.Future[None] | None] = {}

    async def start(self) -> None:
        if self._connection is not None:
            return
        self._stopped = False
        self._declared.clear()
        with unlogged_attempts():
            self._connection = await self._nodes.connect(
                connection_name=self.connection_name,
                reconnect_interval_s=self._reconnect_interval,
                timeout_s=self._timeout,
                start_timeout_s=self._start_timeout,
            )
        self._connection.reconnect_callbacks.add(self._on_reconnected)
        self._following = asyncio.get_running_loop().create_task(
            self._nodes.follow(self._connection, self._reconnect_interval, lambda: self._stopped)
        )

    async def stop(self) -> None:
        self._stopped = True
        await stop_task(self._following, within_s=self._timeout)
        self._following = None
        for subscription in list(self._subscriptions):
            await subscription.cancel()
        for slot in (self._publisher, self._control, self._getter):
            await slot.discard()
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(TimeoutError, *LINK_ERRORS):
                async with asyncio.timeout(self._timeout):
                    await connection.close()

    @property
    def node(self) -> str:
        """The URL (password hidden) of the node this broker connects to, or tries next."""
        return redact_url(self._nodes.current)

    @property
    def is_connected(self) -> bool:
        connection = self._connection
        if connection is None or self._stopped or not connection.connected.is_set():
            return False
        transport = connection.transport
        return transport is not None and not transport.connection.is_closed

    async def declare_queue(
        self,
        name: str,
        *,
        dead_letter_to: str | None = None,
        message_ttl_s: float | None = None,
        delivery_limit: int | None = None,
        expires_s: float | None = None,
    ) -> None:
        arguments = self._queue_arguments(dead_letter_to, message_ttl_s, delivery_limit)
        expires = queue_ttl_ms(expires_s)
        if expires is not None:
            arguments["x-expires"] = max(1, expires)
        if self._declared.get(name) == arguments:
            return
        try:
            await self._control_call(
                lambda channel: channel.queue_declare(name, durable=True, arguments=arguments)
            )
        except aiormq.exceptions.ChannelPreconditionFailed as error:
            raise BrokerError(
                f"cannot declare queue {name!r} with {arguments}: it already exists with "
                f"other arguments ({reply_text(error)})"
            ) from error
        except aiormq.exceptions.AMQPError as error:
            raise BrokerError(f"cannot declare queue {name!r}: {reply_text(error)}") from error
        if expires is None:  # an expiring queue can go behind our back: declare it every time
            self._declared[name] = arguments

    async def publish(self, queue: str, message: OutgoingMessage) -> None:
        if self._stopped:
            raise PublishError(f"cannot publish to {queue!r}: the broker is stopped")
        ttl = expiration_ms(message.expiration_s)
        message_id = message.message_id or uuid.uuid4().hex
        properties = aiormq.spec.Basic.Properties(
            content_type=message.content_type,
            headers=amqp091_headers(message),
            delivery_mode=_PERSISTENT,
            correlation_id=message.correlation_id,
            message_id=message_id,
            timestamp=message.timestamp,
            expiration=None if ttl is None else str(ttl),
            message_type=message.type,
            app_id=message.app_id,
        )
        await self._take_turn(message_id)
        try:
            result = await self._publish(queue, message.body, properties)
        finally:
            self._end_turn(message_id)
        if not isinstance(result, aiormq.spec.Basic.Ack):
            raise PublishError(f"RabbitMQ did not confirm the message for {queue!r}: {result!r}")

    async def _publish(
        self, queue: str, body: bytes, properties: aiormq.spec.Basic.Properties
    ) -> object:
        try:
            channel = await self._publisher.get()
        except BrokerError as error:
            raise PublishError(f"cannot publish to {queue!r}: {error}") from error
        try:
            return await channel.basic_publish(
                body,
                exchange="",
                routing_key=queue,
                properties=properties,
                mandatory=True,
                timeout=self._publish_timeout,
            )
        except aiormq.exceptions.PublishError as error:
            self._declared.pop(queue, None)
            raise Unroutable(f"unroutable: no queue named {queue!r}") from error
        except aiormq.exceptions.DeliveryError as error:
            raise PublishError(f"RabbitMQ refused (nacked) the message for {queue!r}") from error
        except aiormq.exceptions.ChannelInvalidStateError as error:
            # aiormq raises this before writing anything: the channel was closed already.
            raise PublishError(f"cannot publish to {queue!r}: {error!r}") from error
        except TimeoutError as error:
            raise PublishUncertain(
                f"no confirm for the message to {queue!r} within {self._publish_timeout}s;"
                " it may have been queued"
            ) from error
        except Exception as error:
            # The channel or connection closed with the publish written (or being written)
            # and its confirm outstanding: whether the broker queued it is unknown.
            raise PublishUncertain(
                f"no confirm for the message to {queue!r}: {error!r}; it may have been queued"
            ) from error

    async def _take_turn(self, message_id: str) -> None:
        while message_id in self._publishing:
            waiter = self._publishing[message_id]
            if waiter is None:
                waiter = self._publishing[message_id] = asyncio.get_running_loop().create_future()
            await asyncio.wait([waiter])
        self._publishing[message_id] = None

    def _end_turn(self, message_id: str) -> None:
        waiter = self._publishing.pop(message_id, None)
        if waiter is not None:
            waiter.set_result(None)

    async def consume(self, queue: str, handler: Handler, *, prefetch: int) -> Subscription:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        subscription = RabbitSubscription(
            queue,
            handler,
            prefetch=prefetch,
            open_channel=lambda: self._open_channel(confirms=False),
            wait_connected=self._wait_connected,
            on_cancelled=self._subscriptions.discard,
            operation_timeout_s=self._timeout,
            retry_interval_s=self._reconnect_interval,
        )
        await subscription.attach()
        self._subscriptions.add(subscription)
        return subscription

    async def get(self, queue: str) -> Delivery | None:
        try:
            message = await self._retrying(
                self._getter, lambda channel: channel.basic_get(queue, no_ack=False)
            )
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None  # nothing to take from a queue nobody has declared yet
        except (TimeoutError, *LINK_ERRORS) as error:
            raise BrokerError(f"cannot get from {queue!r}: {error!r}") from error
        if isinstance(message.delivery, aiormq.spec.Basic.GetEmpty):
            return None
        return RabbitDelivery(message)

    async def browse(self, queue: str, *, limit: int) -> list[QueuedMessage]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        # A channel of its own: closing it hands every message it took back at once, in
        # order, even if this process dies half way.
        channel = await self._open_channel(confirms=False)
        found: list[QueuedMessage] = []
        try:
            async with asyncio.timeout(self._timeout + limit * 0.05):
                while len(found) < limit:
                    message = await channel.basic_get(queue, no_ack=False)
                    if isinstance(message.delivery, aiormq.spec.Basic.GetEmpty):
                        break
                    found.append(QueuedMessage.of(RabbitDelivery(message)))
        except aiormq.exceptions.ChannelNotFoundEntity:
            return []
        except (TimeoutError, *LINK_ERRORS) as error:
            raise BrokerError(f"cannot browse {queue!r}: {error!r}") from error
        finally:
            with contextlib.suppress(TimeoutError, *LINK_ERRORS):
                async with asyncio.timeout(self._timeout):
                    await channel.close()
        return found

    async def queue_depth(self, queue: str) -> int:
        try:
            result = await self._control_call(
                lambda channel: channel.queue_declare(queue, passive=True)
            )
        except aiormq.exceptions.ChannelNotFoundEntity as error:
            raise BrokerError(f"no queue named {queue!r}") from error
        except aiormq.exceptions.AMQPError as error:
            raise BrokerError(f"cannot read the depth of {queue!r}: {reply_text(error)}") from error
        return int(result.message_count or 0)

    async def delete_queue(self, name: str) -> None:
        self._declared.pop(name, None)
        try:
            # RabbitMQ answers delete-ok for a queue that does not exist.
            await self._control_call(lambda channel: channel.queue_delete(name))
        except aiormq.exceptions.AMQPError as error:
            raise BrokerError(f"cannot delete queue {name!r}: {reply_text(error)}") from error

    def _queue_arguments(
        self, dead_letter_to: str | None, message_ttl_s: float | None, delivery_limit: int | None
    ) -> dict[str, Any]:
        if delivery_limit is not None and delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        quorum = self._queue_type == "quorum"
        arguments: dict[str, Any] = {"x-queue-type": self._queue_type}
        if quorum:
            # Explicit: RabbitMQ 3.x has no default limit, 4.x defaults to 20.
            arguments["x-delivery-limit"] = delivery_limit or self._delivery_limit
        if dead_letter_to is not None:
            arguments["x-dead-letter-exchange"] = ""
            arguments["x-dead-letter-routing-key"] = dead_letter_to
            if quorum:
                # Dead-lettering is at most once by default: a message leaving a delay queue
                # could vanish. At least once keeps it until its target confirms it, and
                # needs reject-publish overflow (3.10 and 4.x alike).
                arguments["x-dead-letter-strategy"] = "at-least-once"
                arguments["x-overflow"] = "reject-publish"
        ttl = queue_ttl_ms(message_ttl_s)
        if ttl is not None:
            arguments["x-message-ttl"] = ttl
        return arguments

    async def _control_call(self, rpc: Callable[[AbstractChannel], Awaitable[_T]]) -> _T:
        """One RPC on the control channel; AMQP errors pass through, link trouble is a
        BrokerError."""
        try:
            return await self._retrying(self._control, rpc)
        except aiormq.exceptions.AMQPError:
            raise
        except (TimeoutError, ConnectionError, OSError, RuntimeError) as error:
            raise BrokerError(f"RabbitMQ at {self._where} did not answer: {error!r}") from error

    async def _retrying(
        self, slot: ChannelSlot, rpc: Callable[[AbstractChannel], Awaitable[_T]]
    ) -> _T:
        """Run an idempotent RPC, once more if the connection dropped under it. (RabbitMQ
        3.10 even closes the connection when basic.get meets a quorum queue that is still
        starting.) Nothing is lost: a message a dropped get took goes back to its queue."""
        try:
            return await slot.call(rpc, self._timeout)
        except (aiormq.exceptions.AMQPConnectionError, ConnectionError):
            return await slot.call(rpc, self._timeout)

    async def _open_channel(self, *, confirms: bool) -> AbstractChannel:
        # Publishing fails fast while the link is down; everything else waits (bounded)
        # for the robust connection to come back.
        link = await self._link(wait_s=0.0 if confirms else self._timeout)
        try:
            async with asyncio.timeout(self._timeout):
                if confirms:
                    return await link.channel(publisher_confirms=True, on_return_raises=True)
                return await link.channel(publisher_confirms=False)
        except (TimeoutError, *LINK_ERRORS) as error:
            raise BrokerError(f"cannot open a channel on {self._where}: {error!r}") from error

    async def _link(self, *, wait_s: float | None) -> aiormq.abc.AbstractConnection:
        """The live AMQP connection, waiting up to ``wait_s`` (None: as long as it takes)
        for aio-pika to reconnect."""
        loop = asyncio.get_running_loop()
        deadline = None if wait_s is None else loop.time() + wait_s
        while True:
            connection = self._connection
            if connection is None or self._stopped:
                state = "stopped" if self._stopped else "not started"
                raise BrokerError(f"the broker is {state}")
            transport = connection.transport
            alive = transport is not None and not transport.connection.is_closed
            if transport is not None and alive and connection.connected.is_set():
                return transport.connection
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise BrokerError(f"not connected to RabbitMQ at {self._where}")
            if connection.connected.is_set():
                # The transport closed and aio-pika has not noticed yet: it will shortly.
                await asyncio.sleep(0.01 if left is None else min(0.01, left))
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await connection.connected.wait()

    async def _wait_connected(self) -> None:
        await self._link(wait_s=None)

    async def _on_reconnected(self, _connection: object) -> None:
        # A restarted broker may have lost non-replicated queues: declare again, not from memory.
        self._declared.clear()
