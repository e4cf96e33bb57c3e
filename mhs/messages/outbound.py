"""Messages for the outbound queue: the stamped record, with routing facts as headers."""

from __future__ import annotations

from mhs.broker import HeaderValue, OutgoingMessage
from mhs.messages.records import OutboundRecord
from mhs.reliability.headers import REPLY_TO


def outbound_message(
    record: OutboundRecord, *, app_id: str, reply_to: str | None = None
) -> OutgoingMessage:
    """The queue message the delivery workers take: the record as JSON, and headers that
    say who sent what to whom without parsing it; with ``reply_to`` (spine acceptance), the
    reply queue the worker tells how the delivery ended."""
    headers: dict[str, HeaderValue] = {
        "interaction-id": record.interaction_id,
        "from-asid": record.from_asid,
        "to-asid": record.to_asid,
        "from-party-key": record.from_party_key,
        "to-party-key": record.to_party_key,
    }
    if reply_to is not None:
        headers[REPLY_TO] = reply_to
    return OutgoingMessage(
        body=record.model_dump_json().encode(),
        message_id=record.message_id,
        correlation_id=record.correlation_id,
        type=record.interaction_id,
        app_id=app_id,
        headers=headers,
    )
