"""Spine acceptance: how a delivery ended, told to the outbound replica holding its request.

A message queued in spine acceptance names that replica's reply queue in its
``x-mhs-reply-to`` header. The delivery worker that settles it (delivered, or given up:
never a retry) publishes one outcome message there: AMQP type ``mhs.delivery-outcome``,
message id the message's own, and a JSON body ``{"outcome", "reason", "errors"}`` whose
``errors`` are the adaptor's error JSON items (mhs.reliability.errors). Replies to held
requests travel on the same queue; the type tells them apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from mhs.broker import OutgoingMessage
from mhs.messages.records import OutboundRecord
from mhs.reliability.errors import error_items
from mhs.reliability.policy import Delivered, GiveUp

OUTCOME_TYPE = "mhs.delivery-outcome"

Settled = Literal["delivered", "rejected", "dead-lettered", "expired"]


class DeliveryOutcome(BaseModel):
    """What the worker made of a message: delivered to the proxy, or given up and why."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    outcome: Settled
    reason: str | None = None
    errors: tuple[dict[str, str], ...] = ()

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"

    @classmethod
    def of(cls, decision: Delivered | GiveUp) -> DeliveryOutcome:
        if isinstance(decision, Delivered):
            return cls(outcome="delivered")
        items = error_items(decision.errors, outcome=decision.outcome, reason=decision.reason)
        return cls(outcome=decision.outcome, reason=decision.reason, errors=tuple(items))


def outcome_message(record: OutboundRecord, outcome: DeliveryOutcome) -> OutgoingMessage:
    """The outcome message for ``record``'s delivery, for the replica holding its request."""
    return OutgoingMessage(
        body=outcome.model_dump_json().encode(),
        message_id=record.message_id,
        correlation_id=record.correlation_id,
        type=OUTCOME_TYPE,
        app_id="mhs-worker",
    )


def read_outcome(body: bytes) -> DeliveryOutcome | None:
    """The outcome an outcome message's body holds; None if it is not one."""
    try:
        return DeliveryOutcome.model_validate_json(body)
    except ValidationError:
        return None
