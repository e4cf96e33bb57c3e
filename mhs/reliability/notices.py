"""What a sending instance finds on its own queue when Spine said no: a MessageError that
references its message, with our outcome and reason."""

from __future__ import annotations

from collections.abc import Sequence

from mhs.broker import OutgoingMessage
from mhs.ebxml import (
    EBXML_SERVICE,
    ErrorDetail,
    MessageHeader,
    build_message_error,
    timestamp_now,
)
from mhs.ids import new_id
from mhs.messages.instance import instance_message
from mhs.messages.records import OutboundRecord
from mhs.reliability.errors import delivery_failure, error_items


def failure_notice(
    record: OutboundRecord,
    *,
    cpa_id: str,
    outcome: str,
    reason: str,
    errors: Sequence[ErrorDetail] = (),
) -> OutgoingMessage:
    """The MessageError a sending instance finds on its own queue when Spine said no.

    It references the original message id (RefToMessageId, and the message-id property as
    the NHS adaptor sets it for replies) and carries ``mhs-outcome`` and ``mhs-reason``;
    its body's ``errors`` are the same errors as the adaptor's 500 JSON lists them.
    """
    details = list(errors) or [delivery_failure(outcome, reason)]
    original = MessageHeader(
        from_party_id=record.from_party_key,
        to_party_id=record.to_party_key,
        cpa_id=cpa_id,
        conversation_id=record.correlation_id,
        service=EBXML_SERVICE,
        action=record.interaction_id,
        message_id=record.message_id,
        timestamp=timestamp_now(),
    )
    ebxml = build_message_error(original, details, message_id=new_id(), timestamp=timestamp_now())
    # The properties name the message as its sender knows it; the ebXML, as it travelled.
    caller = record.caller_ids
    return instance_message(
        ebxml=ebxml.decode(),
        payload=None,  # no HL7: an adaptor consumer must not parse "" as an empty document
        message_id=caller["Message-Id"],
        correlation_id=caller["Correlation-Id"],
        interaction_id=record.interaction_id,
        from_asid=record.to_asid,
        to_asid=record.from_asid,
        from_party_key=record.to_party_key,
        to_party_key=record.from_party_key,
        ods_code=record.from_ods,
        extra={
            "mhs-outcome": outcome,
            "mhs-reason": reason,
            "ref-to-message-id": caller["Message-Id"],
        },
        errors=error_items(errors, outcome=outcome, reason=reason),
    )
