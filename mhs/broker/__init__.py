"""Message broker transports: RabbitMQ (aio-pika) and the embedded in-memory broker."""

from mhs.broker.base import (
    Broker,
    BrokerError,
    Delivery,
    Handler,
    HeaderValue,
    OutgoingMessage,
    PublishError,
    QueuedMessage,
    Subscription,
    Unroutable,
)

__all__ = [
    "Broker",
    "BrokerError",
    "Delivery",
    "Handler",
    "HeaderValue",
    "OutgoingMessage",
    "PublishError",
    "QueuedMessage",
    "Subscription",
    "Unroutable",
]
