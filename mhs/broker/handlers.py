"""Running a consumer's handler, as both transports do: a handler that raises has its
delivery logged and put back on its queue."""

from __future__ import annotations

from mhs.broker.base import Delivery, Handler
from mhs.observe.events import Event
from mhs.observe.logs import get_logger


async def run_handler(handler: Handler, delivery: Delivery, queue: str) -> None:
    """Run ``handler``; if it raises, log why and put the delivery back on its queue."""
    try:
        await handler(delivery)
    except Exception:
        get_logger("broker").exception(
            Event.BROKER_HANDLER_FAILED, queue=queue, message_id=delivery.message_id
        )
        await delivery.reject(requeue=True)
