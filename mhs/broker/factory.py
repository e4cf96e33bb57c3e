"""Choose the transport from the broker URL."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from mhs.broker.base import Broker


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
        from mhs.broker.memory import MemoryBroker

        return MemoryBroker(queue_type=queue_type, delivery_limit=delivery_limit)
    if urlsplit(url).scheme not in ("amqp", "amqps"):
        raise ValueError("a broker URL starts with amqp:// or amqps://")
    from mhs.broker.rabbitmq import RabbitMqBroker

    return RabbitMqBroker(
        url, connection_name=connection_name, queue_type=queue_type, delivery_limit=delivery_limit
    )
