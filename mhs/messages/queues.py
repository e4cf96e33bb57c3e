"""The queues of reliable delivery, declared alike by every role and tool that touches them.

RabbitMQ refuses to declare a queue again with other arguments, so the arguments live
here, once: the dead-letter queue (a high delivery limit, because looking at it with
``mhs dlq`` counts as a delivery), the outbound queue (over-the-limit messages go to the
dead-letter queue) and the delay queues (each a TTL that dead-letters back to outbound).
"""

from __future__ import annotations

from mhs.broker import Broker
from mhs.directory import Directory
from mhs.reliability.policy import Retry
from mhs.settings import Settings

DEAD_LETTER_DELIVERY_LIMIT = 1_000_000


async def declare_outbound(broker: Broker, settings: Settings) -> None:
    """The outbound queue and the dead-letter queue it overflows into (declared first, so
    nothing is ever dead-lettered to a queue that is not there)."""
    await broker.declare_queue(
        settings.dead_letter_queue, delivery_limit=DEAD_LETTER_DELIVERY_LIMIT
    )
    await broker.declare_queue(settings.outbound_queue, dead_letter_to=settings.dead_letter_queue)


async def declare_delay(broker: Broker, settings: Settings, delay_ms: int) -> str:
    """The delay queue for ``delay_ms``: its messages go back to the outbound queue then."""
    name = settings.delay_queue(delay_ms)
    await broker.declare_queue(
        name, dead_letter_to=settings.outbound_queue, message_ttl_s=delay_ms / 1000
    )
    return name


async def declare_known(broker: Broker, settings: Settings, name: str) -> None:
    """Declare ``name`` as the roles do: with its arguments if it is one of the above."""
    if name in (settings.outbound_queue, settings.dead_letter_queue):
        await declare_outbound(broker, settings)
        return
    delay_prefix = settings.queue("delay.")
    if name.startswith(delay_prefix) and name[len(delay_prefix) :].isdigit():
        await declare_delay(broker, settings, int(name[len(delay_prefix) :]))
        return
    await broker.declare_queue(name)


def instance_queues(settings: Settings, directory: Directory) -> list[str]:
    """Every instance's own inbound queue, each once (a shared one is named once), sorted."""
    return sorted({settings.inbound_queue(party.asid) for party in directory.parties})


def namespace_queues(settings: Settings, directory: Directory) -> list[str]:
    """Every queue the roles can declare for ``directory`` in ``settings``' namespace: what a
    tool that gives one run a namespace of its own deletes afterwards. Each outbound
    replica's reply queue is not listed: RabbitMQ deletes it once unused (``x-expires``)."""
    names = instance_queues(settings, directory)
    names += [
        settings.outbound_queue,
        settings.dead_letter_queue,
        settings.unclaimed_replies_queue,
    ]
    intervals = {
        i.reliability.retry_interval.total_seconds() for i in directory.interactions.values()
    }
    names += [settings.delay_queue(Retry(s, in_process=False).delay_ms) for s in sorted(intervals)]
    return names


async def delete_namespace_queues(broker: Broker, settings: Settings, directory: Directory) -> None:
    """Delete every queue of ``namespace_queues``: a run with a namespace of its own
    leaves nothing behind."""
    for queue in namespace_queues(settings, directory):
        await broker.delete_queue(queue)
