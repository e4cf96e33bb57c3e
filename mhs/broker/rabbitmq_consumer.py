"""RabbitMQ deliveries and consumers: one aiormq channel per subscription, restored after loss."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import aiormq
from aiormq.abc import AbstractChannel, DeliveredMessage

from mhs.broker.base import BrokerError, Handler, HeaderValue
from mhs.broker.codec import decode_headers
from mhs.broker.handlers import run_handler
from mhs.tasks import stop_task

# Settling can only fail because the channel went away; the broker then redelivers.
_LINK_ERRORS = (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError)

ChannelOpener = Callable[[], Awaitable[AbstractChannel]]
ConnectedWaiter = Callable[[], Awaitable[None]]


# One frame to send: (delivery tag, multiple for an ack / requeue for a reject, is a reject,
# a future to resolve once the frame is written to the connection, if anyone waits).
_Frame = tuple[int, bool, bool, "asyncio.Future[None] | None"]


class Acks:
    """Acknowledgements for one consumer channel, sent in batches and in order.

    Deliveries finish in about the order they arrived, so the settled ones at the front
    are acknowledged with one ``multiple`` ack per event-loop turn instead of a frame each
    (the consuming side of aio-pika spends much of its time on acks). A multiple ack covers
    every unsettled tag up to it, so it never goes past a delivery still being worked on,
    and it names the last tag acked here (the broker refuses a tag it no longer holds).
    Acks held behind a delivery still being worked on are sent singly after ``hold_s`` so
    the prefetch window keeps moving.

    Every ack and reject frame goes through one sender, in the order decided here: aiormq's
    bounded write queue can let a later frame overtake one waiting for room, and a multiple
    ack overtaking an earlier one, or a reject it covers, would be refused or would ack a
    message meant to be rejected.
    """

    def __init__(self, channel: AbstractChannel, *, hold_s: float = 0.01) -> None:
        self._channel = channel
        self._hold_s = hold_s
        self._order: deque[int] = deque()  # delivered tags not yet covered, oldest first
        self._settled: set[int] = set()  # of those, the ones acked or rejected
        self._unsent: set[int] = set()  # of those, acks not yet queued to send
        self._flush_soon = False
        self._stragglers: asyncio.TimerHandle | None = None
        self._outbox: asyncio.Queue[_Frame | None] = asyncio.Queue()
        self._sender = asyncio.get_running_loop().create_task(self._send_in_order())

    def delivered(self, tag: int) -> None:
        order = self._order
        if order and tag < order[-1]:
            # Tags only grow on a channel; should a delivery be seen late, keep them sorted
            # all the same: a multiple ack must never pass an unsettled tag.
            bisect.insort(order, tag)
        else:
            order.append(tag)

    def ack(self, tag: int) -> None:
        self._settled.add(tag)
        self._unsent.add(tag)
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def reject(self, tag: int, *, requeue: bool) -> None:
        """Queue a reject ahead of any later ack, and wait until it is written."""
        self._settled.add(tag)
        written = asyncio.get_running_loop().create_future()
        self._outbox.put_nowait((tag, requeue, True, written))
        await written

    def _flush(self) -> None:
        self._flush_soon = False
        order, settled, unsent = self._order, self._settled, self._unsent
        last: int | None = None
        while order and order[0] in settled:
            tag = order.popleft()
            settled.discard(tag)
            if tag in unsent:
                unsent.discard(tag)
                last = tag
        if last is not None:
            self._outbox.put_nowait((last, True, False, None))
        if unsent and self._stragglers is None:
            self._stragglers = asyncio.get_running_loop().call_later(
                self._hold_s, self._send_stragglers
            )

    def _send_stragglers(self) -> None:
        self._stragglers = None
        for tag in sorted(self._unsent):
            self._outbox.put_nowait((tag, False, False, None))
        self._unsent.clear()

    async def _send_in_order(self) -> None:
        channel = self._channel
        while (frame := await self._outbox.get()) is not None:
            tag, flag, is_reject, written = frame
            try:
                if not channel.is_closed:
                    with contextlib.suppress(*_LINK_ERRORS):
                        if is_reject:
                            await channel.basic_reject(tag, requeue=flag, wait=False)
                        else:
                            await channel.basic_ack(tag, multiple=flag, wait=False)
            finally:
                if written is not None and not written.done():
                    written.set_result(None)

    async def drain(self) -> None:
        """Send every ack still held, and wait until they are written."""
        if self._stragglers is not None:
            self._stragglers.cancel()
        self._flush()
        self._send_stragglers()
        self._outbox.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._sender), timeout=5)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            # The sender was stopped (its channel went: close()), which is no reason to
            # fail; a cancellation of our caller still is.
            task = asyncio.current_task()
            if not self._sender.cancelled() or (task is not None and task.cancelling()):
                raise

    def close(self) -> None:
        """Stop the sender: the channel is gone, and the broker redelivers what it held."""
        if self._stragglers is not None:
            self._stragglers.cancel()
        self._sender.cancel()
        # Nobody waits forever on a reject that will never be written.
        while not self._outbox.empty():
            frame = self._outbox.get_nowait()
            if frame is not None and frame[3] is not None and not frame[3].done():
                frame[3].set_result(None)


class RabbitDelivery:
    """A received message; a thin view over aiormq's frame, headers decoded on first use."""

    __slots__ = ("_acks", "_headers", "_message", "_properties", "_settled")

    def __init__(self, message: DeliveredMessage, acks: Acks | None = None) -> None:
        self._message = message
        self._acks = acks
        self._properties = message.header.properties
        self._headers: dict[str, HeaderValue] | None = None
        self._settled = False
        if acks is not None and message.delivery_tag is not None:
            acks.delivered(message.delivery_tag)

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def message_id(self) -> str | None:
        return self._properties.message_id

    @property
    def correlation_id(self) -> str | None:
        return self._properties.correlation_id

    @property
    def headers(self) -> Mapping[str, HeaderValue]:
        if self._headers is None:
            self._headers = decode_headers(self._properties.headers)
        return self._headers

    @property
    def content_type(self) -> str | None:
        return self._properties.content_type

    @property
    def type(self) -> str | None:
        return self._properties.message_type

    @property
    def app_id(self) -> str | None:
        return self._properties.app_id

    @property
    def timestamp(self) -> datetime | None:
        return self._properties.timestamp

    @property
    def redelivered(self) -> bool:
        return bool(self._message.redelivered)

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        """Acknowledge; a second ack or reject is a no-op, as is one after the channel died."""
        if self._settled:
            return
        self._settled = True
        tag = self._message.delivery_tag
        channel = self._message.channel
        if tag is None or channel.is_closed:
            return
        if self._acks is not None:
            self._acks.ack(tag)
            return
        with contextlib.suppress(*_LINK_ERRORS):
            await channel.basic_ack(tag)

    async def reject(self, *, requeue: bool) -> None:
        """Reject (``basic.reject``, never nack: only reject counts toward quorum limits)."""
        if self._settled:
            return
        self._settled = True
        tag = self._message.delivery_tag
        channel = self._message.channel
        if tag is None or channel.is_closed:
            return
        with contextlib.suppress(*_LINK_ERRORS):
            if self._acks is not None:
                await self._acks.reject(tag, requeue=requeue)
            else:
                await channel.basic_reject(tag, requeue=requeue)


class RabbitSubscription:
    """A consumer on its own channel. ``active`` is True only while the broker has it attached.

    When the channel closes (connection lost, channel error) and the subscription was not
    cancelled, it waits for the connection and attaches again on a new channel, retrying
    every ``retry_interval_s``. A consumer the broker cancels (its queue was deleted) stays
    inactive: re-declaring a deleted queue behind the operator's back would be worse.
    """

    def __init__(
        self,
        queue: str,
        handler: Handler,
        *,
        prefetch: int,
        open_channel: ChannelOpener,
        wait_connected: ConnectedWaiter,
        on_cancelled: Callable[[RabbitSubscription], None],
        operation_timeout_s: float,
        retry_interval_s: float,
    ) -> None:
        self.queue = queue
        self._handler = handler
        self._prefetch = prefetch
        self._open_channel = open_channel
        self._wait_connected = wait_connected
        self._on_cancelled = on_cancelled
        self._timeout = operation_timeout_s
        self._retry_interval = retry_interval_s
        self._tag = f"mhs.{uuid.uuid4().hex}"
        self._channel: AbstractChannel | None = None
        self._acks: Acks | None = None
        self._broker_cancelled = False
        self._cancelled = False
        self._restoring: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[object]] = set()

    @property
    def active(self) -> bool:
        channel = self._channel
        return (
            not self._cancelled
            and not self._broker_cancelled
            and channel is not None
            and not channel.is_closed
        )

    async def attach(self) -> None:
        """Open a channel with per-consumer QoS and start consuming (BrokerError if not)."""
        channel = await self._open_channel()
        acks = self._acks = Acks(channel)
        try:
            async with asyncio.timeout(self._timeout):
                # global_=False: per-consumer prefetch (global QoS is deprecated in 4.x).
                await channel.basic_qos(prefetch_count=self._prefetch, global_=False)
                channel.on_consumer_cancel_callbacks.add(self._on_broker_cancel)
                await channel.basic_consume(
                    self.queue, self._on_message, no_ack=False, consumer_tag=self._tag
                )
        except aiormq.exceptions.ChannelNotFoundEntity as error:
            acks.close()
            await _close_quietly(channel)
            raise BrokerError(f"cannot consume {self.queue!r}: no such queue") from error
        except (TimeoutError, *_LINK_ERRORS) as error:
            acks.close()
            await _close_quietly(channel)
            raise BrokerError(f"cannot consume {self.queue!r}: {error!r}") from error
        except BaseException:
            # Cancelled half way (the subscription was cancelled while restoring).
            acks.close()
            await asyncio.shield(_close_quietly(channel))
            raise
        self._broker_cancelled = False
        self._channel = channel
        channel.closing.add_done_callback(lambda _: acks.close())
        channel.closing.add_done_callback(self._on_channel_closed)

    async def cancel(self, *, grace_s: float = 0.0) -> None:
        """Stop consuming (basic.cancel keeps the channel, so running handlers can still
        settle within ``grace_s``); closing the channel then hands unacked deliveries back
        to the queue and cancels handlers still running."""
        if self._cancelled:
            return
        self._cancelled = True
        self._on_cancelled(self)
        await stop_task(self._restoring, within_s=self._timeout)
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(TimeoutError, *_LINK_ERRORS):
                async with asyncio.timeout(self._timeout):
                    await channel.basic_cancel(self._tag)
            running = {task for task in self._running if task is not asyncio.current_task()}
            if grace_s > 0 and running:
                await asyncio.wait(running, timeout=grace_s)
            if self._acks is not None:
                await self._acks.drain()
            await _close_quietly(channel)
        left = [task for task in self._running if task is not asyncio.current_task()]
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)

    async def _on_message(self, message: DeliveredMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await run_handler(self._handler, RabbitDelivery(message, self._acks), self.queue)
        finally:
            if task is not None:
                self._running.discard(task)

    def _on_broker_cancel(self, frame: aiormq.spec.Basic.Cancel) -> None:
        if frame.consumer_tag == self._tag:
            self._broker_cancelled = True

    def _on_channel_closed(self, _: asyncio.Future[object]) -> None:
        if self._cancelled or (self._restoring is not None and not self._restoring.done()):
            return
        self._restoring = asyncio.get_running_loop().create_task(self._restore())

    async def _restore(self) -> None:
        while not self._cancelled:
            try:
                await self._wait_connected()
                await self.attach()
            except BrokerError:
                await asyncio.sleep(self._retry_interval)
            else:
                return


async def _close_quietly(channel: AbstractChannel) -> None:
    with contextlib.suppress(TimeoutError, *_LINK_ERRORS):
        async with asyncio.timeout(5):
            await channel.close()
