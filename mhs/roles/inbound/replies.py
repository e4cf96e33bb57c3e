"""Replies to held requests (wait-for-response) at the inbound MHS: to the waiting replica.

A reply (a message with RefToMessageId) whose request an outbound replica is holding goes
to that replica's reply queue (mhs.messages.sync_async); when none is holding it, when the state
store cannot say, or when that queue is gone (the replica died), it goes to the recipient
instance's own queue as every other message does: nothing is lost.
"""

from __future__ import annotations

from collections.abc import Mapping

from mhs.broker import Broker, BrokerError, OutgoingMessage, PublishUncertain
from mhs.messages.sync_async import waiting_name
from mhs.observe.events import Event
from mhs.observe.logger import Logger
from mhs.state import StateError, StateStore


async def waiting_queue(
    store: StateStore, log: Logger, message_id: str, fields: Mapping[str, str | None]
) -> str | None:
    """The reply queue of the replica holding ``message_id``'s request, if one is."""
    try:
        found = await store.get(waiting_name(message_id))
    except StateError as error:
        log.warning(Event.INBOUND_REPLY_REROUTED, reason=str(error), **fields)
        return None
    return found.decode() if found else None


async def publish_to_waiter(
    broker: Broker,
    log: Logger,
    queue: str,
    message: OutgoingMessage,
    fields: Mapping[str, str | None],
) -> bool:
    """Publish the reply to the waiting replica's queue, confirmed; False if it cannot go
    there (the queue is gone), and the caller sends it to the instance's queue instead.
    ``PublishUncertain`` is raised, not answered False: the reply may be on that queue, and
    a copy on the instance's queue too would be a duplicate nobody flagged."""
    try:
        await broker.publish(queue, message)
    except PublishUncertain:
        raise
    except BrokerError as error:
        log.warning(Event.INBOUND_REPLY_REROUTED, reason=str(error), queue=queue, **fields)
        return False
    return True
