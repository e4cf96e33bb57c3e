"""Message broker transports: RabbitMQ (aio-pika) and the embedded in-memory broker."""

from mhs.broker.base import (
    Broker,
    BrokerError,
    BrokerUnavailable,
    Delivery,
    Handler,
    HeaderValue,
    OutgoingMessage,
    PublishError,
    PublishUncertain,
    QueuedMessage,
    Subscription,
    Unroutable,
)

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerUnavailable",
    "Delivery",
    "Handler",
    "HeaderValue",
    "OutgoingMessage",
    "PublishError",
    "PublishUncertain",
    "QueuedMessage",
    "Subscription",
    "Unroutable",
]
