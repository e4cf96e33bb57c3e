"""Choose the transport from the broker URL."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from mhs.broker.base import Broker
from mhs.broker.memory import MemoryBroker
from mhs.settings import Settings


def create_broker(
    url: str | None,
    *,
    connection_name: str,
    queue_type: Literal["quorum", "classic"] = "quorum",
    delivery_limit: int = 20,
) -> Broker:
    """The embedded in-memory broker for ``None``, RabbitMQ for ``amqp://`` or ``amqps://``.

    ``connection_name`` is shown in RabbitMQ's management UI; ``queue_type`` and
    ``delivery_limit`` apply to every queue the broker declares.
    """
    if url is None:
        return MemoryBroker(queue_type=queue_type, delivery_limit=delivery_limit)
    if urlsplit(url).scheme not in ("amqp", "amqps"):
        raise ValueError("a broker URL starts with amqp:// or amqps://")
    # aio-pika and aiormq take about 0.25 s to import: tools and the embedded broker never
    # need them, so each transport loads only when chosen.
    from mhs.broker.rabbitmq import RabbitMqBroker  # noqa: PLC0415

    return RabbitMqBroker(
        url, connection_name=connection_name, queue_type=queue_type, delivery_limit=delivery_limit
    )


def broker_for(settings: Settings, name: str) -> Broker:
    """The deployment's broker (``MHS_BROKER_URL``, its queue type and delivery limit), on a
    connection named ``<MHS_CONNECTION_NAME>-<name>``."""
    return create_broker(
        settings.broker_url,
        connection_name=f"{settings.connection_name}-{name}",
        queue_type=settings.queue_type,
        delivery_limit=settings.delivery_limit,
    )
