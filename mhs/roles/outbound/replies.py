"""wait-for-response: true: the outbound MHS holds the request until its reply arrives.

No polling. Each outbound replica owns a reply queue, ``mhs.replies.<replica>``. Before it
sends a held message it registers ``waiting:<message id>`` -> that queue in the state
store (mhs.messages.sync_async); the inbound MHS publishes a reply referring to that id there, and
this replica's consumer hands it to the waiting request, which answers 200 with the
reply's HL7 payload, as the NHS adaptor does. After MHS_SYNC_ASYNC_TIMEOUT_S the request
gets the adaptor's 500 instead, and the reply, whenever it comes, reaches the instance's
own queue: the registration is gone, or (in a race) this replica passes it on.

The same queue takes the delivery outcomes of messages sent in spine acceptance
(mhs.messages.outcomes, told apart by their type): they are handed to the request held for
them, and one nobody waits for any more is dropped, never passed on.

Nothing is stranded when a replica goes: stopping, it answers its held requests and
removes their registrations, so later replies go to the instances' queues; if it dies
instead, replies sent to its queue expire from it into ``mhs.replies.unclaimed``, which
every replica consumes and passes on to the instances' queues, and the queue itself is
deleted once unused for long (``x-expires``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from mhs.broker import Broker, BrokerError, Delivery, Subscription
from mhs.ids import is_asid
from mhs.messages.copies import carried_headers, onward
from mhs.messages.instance import POSSIBLE_DUPLICATE, amqp10_properties
from mhs.messages.outcomes import OUTCOME_TYPE, DeliveryOutcome, read_outcome
from mhs.messages.records import OutboundRecord
from mhs.messages.sync_async import ReplyTimings, reply_payload, waiting_name
from mhs.observe.events import Event
from mhs.observe.logger import Logger
from mhs.roles.common import BROKER, LOG, READINESS, SETTINGS, text_error
from mhs.roles.outbound.status import STATE
from mhs.settings import Settings
from mhs.state import StateError, StateStore


class Stopping(Exception):
    """The replica is stopping: a held request is answered without its reply."""


class AlreadyWaiting(Exception):
    """A request for this message id is already held here."""


class GivenUp(Exception):
    """Spine acceptance: the delivery worker gave the held message up; no reply will come."""

    def __init__(self, outcome: DeliveryOutcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class Replies:
    """This replica's reply queue and the requests held for their replies."""

    def __init__(self, settings: Settings, broker: Broker, store: StateStore, log: Logger) -> None:
        self.settings = settings
        self.broker = broker
        self.store = store
        self.log = log
        self.timings = ReplyTimings(settings.sync_async_timeout_s)
        self.queue = settings.reply_queue(uuid.uuid4().hex[:12])
        self._waiting: dict[str, asyncio.Future[str]] = {}
        # None: the replica is stopping before the outcome came.
        self._outcomes: dict[str, asyncio.Future[DeliveryOutcome | None]] = {}
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        unclaimed = self.settings.unclaimed_replies_queue
        await self.broker.declare_queue(unclaimed)
        await self.broker.declare_queue(
            self.queue,
            dead_letter_to=unclaimed,
            message_ttl_s=self.timings.reply_ttl_s,
            expires_s=self.timings.queue_expiry_s,
        )
        prefetch = self.settings.prefetch
        self._subscriptions = [
            await self.broker.consume(self.queue, self._on_reply, prefetch=prefetch),
            await self.broker.consume(unclaimed, self._pass_on, prefetch=prefetch),
        ]

    def release_waiting(self) -> None:
        """Answer every held request now (the role is stopping)."""
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(Stopping())
        for outcome in self._outcomes.values():
            if not outcome.done():
                outcome.set_result(None)

    async def stop(self) -> None:
        """Remove this replica's registrations, then stop consuming. Replies still on their
        way here expire into the unclaimed queue, which other replicas pass on."""
        self.release_waiting()
        names = [waiting_name(message_id) for message_id in self._waiting]
        with contextlib.suppress(StateError):
            await asyncio.gather(*(self.store.delete(name) for name in names))
        for subscription in self._subscriptions:
            await subscription.cancel(grace_s=self.settings.shutdown_timeout_s)

    def readiness(self) -> str | None:
        # With the broker link down, "broker not connected" already says why.
        if self.broker.is_connected and not all(s.active for s in self._subscriptions):
            return "not consuming the reply queues"
        return None

    @contextlib.asynccontextmanager
    async def waiting(self, message_id: str) -> AsyncIterator[asyncio.Future[str]]:
        """Register as the one waiting for ``message_id``'s reply while the block runs."""
        if message_id in self._waiting:
            raise AlreadyWaiting(message_id)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        try:
            await self.store.put(
                waiting_name(message_id),
                self.queue.encode(),
                ttl_s=self.timings.registration_s,
            )
            yield future
        finally:
            del self._waiting[message_id]
            # If the store does not answer, the registration expires with its TTL.
            with contextlib.suppress(StateError):
                await self.store.delete(waiting_name(message_id))

    @contextlib.asynccontextmanager
    async def awaiting_outcome(
        self, message_id: str
    ) -> AsyncIterator[asyncio.Future[DeliveryOutcome | None]]:
        """Be the one told ``message_id``'s delivery outcome while the block runs (the
        worker finds this queue in the message itself: nothing is registered elsewhere)."""
        if message_id in self._outcomes:
            raise AlreadyWaiting(message_id)
        future: asyncio.Future[DeliveryOutcome | None] = asyncio.get_running_loop().create_future()
        self._outcomes[message_id] = future
        try:
            yield future
        finally:
            del self._outcomes[message_id]

    async def _on_reply(self, delivery: Delivery) -> None:
        if delivery.type == OUTCOME_TYPE:
            self._on_outcome(delivery)
            await delivery.ack()
            return
        future = self._waiting.get((delivery.message_id or "").upper())
        payload = reply_payload(delivery.body)
        if future is not None and not future.done() and payload is not None:
            future.set_result(payload)
            await delivery.ack()
            return
        await self._pass_on(delivery)

    def _on_outcome(self, delivery: Delivery) -> None:
        # An outcome nobody waits for any more (the request was answered) is dropped: the
        # sender's notice and the message's timeline already tell it.
        future = self._outcomes.get((delivery.message_id or "").upper())
        outcome = read_outcome(delivery.body)
        if future is not None and not future.done() and outcome is not None:
            future.set_result(outcome)

    async def _pass_on(self, delivery: Delivery) -> None:
        """A reply nobody here is waiting for: on to its recipient instance's own queue."""
        if delivery.type == OUTCOME_TYPE:
            # Expired out of a dead replica's queue: it means nothing to an instance.
            await delivery.ack()
            return
        headers = delivery.headers
        to_asid = headers.get("to-asid")
        fields = {
            "message_id": delivery.message_id,
            "correlation_id": delivery.correlation_id,
            "interaction_id": headers.get("interaction-id"),
            "from_asid": headers.get("from-asid"),
            "to_asid": to_asid,
        }
        if not isinstance(to_asid, str) or not is_asid(to_asid):
            self.log.warning(
                Event.MESSAGE_REPLY_FORWARDED,
                outcome="dropped",
                reason="the reply names no recipient ASID",
                **fields,
            )
            await delivery.reject(requeue=False)
            return
        queue = self.settings.inbound_queue(to_asid)
        carried = carried_headers(headers)
        if delivery.redelivered:
            # An earlier take of it may have put it there already (its confirm was lost,
            # or this replica died after publishing): this copy says so.
            carried[POSSIBLE_DUPLICATE] = True
        try:
            await self.broker.declare_queue(queue)
            await self.broker.publish(queue, onward(delivery, carried, amqp10_properties(carried)))
        except BrokerError:
            await delivery.reject(requeue=True)
            return
        self.log.info(Event.MESSAGE_REPLY_FORWARDED, outcome="delivered", queue=queue, **fields)
        await delivery.ack()


REPLIES = web.AppKey("replies", Replies)


def install_replies(app: web.Application) -> None:
    """Give the outbound MHS its reply queue (after install_status: it needs the store)."""
    app.cleanup_ctx.append(_replies_ctx)
    app.on_shutdown.append(_answer_held_requests)


async def _replies_ctx(app: web.Application) -> AsyncIterator[None]:
    replies = Replies(app[SETTINGS], app[BROKER], app[STATE], app[LOG])
    await replies.start()
    app[REPLIES] = replies
    app[READINESS].append(replies.readiness)
    yield
    await replies.stop()


async def _answer_held_requests(app: web.Application) -> None:
    # Held requests could outlast the shutdown timeout; answer them before it cuts them off.
    if REPLIES in app:
        app[REPLIES].release_waiting()


async def hold_for_reply(
    request: web.Request,
    record: OutboundRecord,
    fields: dict[str, str],
    send: Callable[[], Awaitable[web.Response | None]],
    *,
    outcome: asyncio.Future[DeliveryOutcome | None] | None = None,
) -> web.Response:
    """Send the accepted message and answer with its reply's payload (200, text/xml), or
    the NHS adaptor's 500 when no reply arrives in time. ``send`` queues the message and
    returns the answer to give if that failed. With the delivery's ``outcome`` (spine
    acceptance), a message given up raises GivenUp at once instead of waiting on."""
    app = request.app
    replies, log = app[REPLIES], app[LOG]
    ids = record.caller_ids
    wait_s = replies.timings.wait_s
    try:
        async with replies.waiting(record.message_id) as reply:
            not_sent = await send()
            if not_sent is not None:
                return not_sent
            log.info(Event.MESSAGE_AWAITING_REPLY, queue=replies.queue, **fields)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(wait_s):
                    payload = await _reply(reply, outcome)
            except (TimeoutError, Stopping) as error:
                return _no_reply(app, record, fields, started, stopping=isinstance(error, Stopping))
    except AlreadyWaiting:
        return _refuse(
            app,
            409,
            f"a request for message {record.message_id} is already waiting for its reply; "
            "nothing was sent again",
            fields,
        )
    except StateError as error:
        return _refuse(
            app,
            503,
            "cannot hold the request for its reply, nothing was accepted: "
            f"the state store did not answer ({error})",
            fields,
        )
    log.info(
        Event.MESSAGE_REPLIED,
        status=200,
        outcome="replied",
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        **fields,
    )
    return web.Response(status=200, text=payload, content_type="text/xml", headers=ids)


async def _reply(
    reply: asyncio.Future[str], outcome: asyncio.Future[DeliveryOutcome | None] | None
) -> str:
    """The reply's payload, unless the delivery's ``outcome`` says first that none will come."""
    if outcome is not None:
        await asyncio.wait((reply, outcome), return_when=asyncio.FIRST_COMPLETED)
        settled = outcome.result() if outcome.done() else None
        if not reply.done() and settled is not None and not settled.delivered:
            raise GivenUp(settled)
    return await reply


def _no_reply(
    app: web.Application,
    record: OutboundRecord,
    fields: dict[str, str],
    started: float,
    *,
    stopping: bool,
) -> web.Response:
    """The NHS adaptor's 500 for a reply that did not come in time (or before a stop)."""
    app[LOG].info(
        Event.MESSAGE_REPLY_TIMED_OUT,
        status=500,
        outcome="stopping" if stopping else "timed-out",
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        **fields,
    )
    wait_s = app[REPLIES].timings.wait_s
    why = "this outbound MHS is stopping" if stopping else f"within {wait_s:g} s"
    return text_error(
        500,
        f"No reply to message {record.caller_ids['Message-Id']} arrived {why}; it was sent, "
        "and its reply, when it comes, goes to your inbound queue",
        **record.caller_ids,
    )


def _refuse(app: web.Application, status: int, text: str, fields: dict[str, str]) -> web.Response:
    app[LOG].warning(Event.MESSAGE_REFUSED, status=status, reason=text, **fields)
    return text_error(status, text)
