"""Turning a queued outbound record into what goes to Spine, and failures into notices."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mhs.broker import Delivery, HeaderValue, OutgoingMessage
from mhs.directory import Interaction, Party
from mhs.ebxml import (
    ACTOR_NEXT_MSH,
    ACTOR_TO_PARTY_MSH,
    EBXML_SERVICE,
    Attachment,
    ErrorDetail,
    MessageHeader,
    build_message_error,
    build_request,
    timestamp_now,
)
from mhs.ids import new_id
from mhs.messages.instance import instance_message
from mhs.messages.records import OutboundRecord
from mhs.reliability.policy import Progress, time_header

# What a dead letter says about itself, beside the progress headers (mhs.reliability.policy).
OUTCOME = "x-mhs-outcome"
REASON = "x-mhs-reason"
ACCEPTED_AT = "x-mhs-accepted-at-ms"
DEAD_LETTERED_AT = "x-mhs-dead-lettered-at-ms"
REPLAYS = "x-mhs-replays"

SPINE_PATHS = {
    "async-express": "/reliablemessaging/queryrequest",
    "async-reliable": "/reliablemessaging/reliablerequest",
    "forward-reliable": "/reliablemessaging/forwardreliable",
}


@dataclass(frozen=True, slots=True)
class SpineRequest:
    """An ebXML request ready to POST, less the per-attempt headers."""

    path: str
    body: bytes
    headers: dict[str, str]


def spine_request(
    record: OutboundRecord, interaction: Interaction, recipient: Party
) -> SpineRequest:
    """Build the ebXML multipart message for ``record`` with the interaction's flags."""
    reliability = interaction.reliability
    reliable = reliability.ack_requested == "always"
    header = MessageHeader(
        from_party_id=record.from_party_key,
        to_party_id=record.to_party_key,
        cpa_id=recipient.cpa_id,
        conversation_id=record.correlation_id,
        service=interaction.service,
        action=record.interaction_id,
        message_id=record.message_id,
        timestamp=timestamp_now(),
        duplicate_elimination=reliability.duplicate_elimination == "always",
        ack_requested=reliable,
        ack_actor=(
            ACTOR_NEXT_MSH if interaction.pattern == "forward-reliable" else ACTOR_TO_PARTY_MSH
        )
        if reliable
        else None,
        sync_reply=reliability.sync_reply_mode == "MSHSignalsOnly",
    )
    attachments = [
        Attachment(
            content_id=f"{new_id()}@spine.nhs.uk",
            content_type=a.content_type,
            payload=a.payload,
            is_base64=a.is_base64,
            description=a.description,
        )
        for a in record.attachments
    ]
    body, content_type = build_request(header, record.payload, attachments)
    return SpineRequest(
        path=SPINE_PATHS[interaction.pattern],
        body=body,
        headers={
            "Content-Type": content_type,
            "SOAPAction": f"{interaction.service}/{record.interaction_id}",
            "Ssp-From": record.from_asid,
            "Ssp-To": record.to_asid,
            "Ssp-InteractionID": record.interaction_id,
            "Message-Id": record.message_id,
            "Correlation-Id": record.correlation_id,
            "Interaction-Id": record.interaction_id,
        },
    )


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
    the NHS adaptor sets it for replies) and carries ``mhs-outcome`` and ``mhs-reason``.
    """
    details = list(errors) or [
        ErrorDetail(
            kind="ebxml",
            code="TimeToLiveExpired" if outcome == "expired" else "DeliveryFailure",
            severity="Error",
            description=reason,
        )
    ]
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
    return instance_message(
        ebxml=ebxml.decode(),
        payload="",
        message_id=record.message_id,
        correlation_id=record.correlation_id,
        interaction_id=record.interaction_id,
        from_asid=record.to_asid,
        to_asid=record.from_asid,
        from_party_key=record.to_party_key,
        to_party_key=record.from_party_key,
        ods_code=record.from_ods,
        extra={
            "mhs-outcome": outcome,
            "mhs-reason": reason,
            "ref-to-message-id": record.message_id,
        },
    )


def carried_headers(headers: Mapping[str, HeaderValue]) -> dict[str, HeaderValue]:
    """A received message's headers, fit to publish again: RabbitMQ writes its own
    (``x-death``, ``x-first-death-*``, ``x-delivery-count``) and they do not travel as text."""
    return {k: v for k, v in headers.items() if not k.startswith("x-") or k.startswith("x-mhs-")}


def onward(delivery: Delivery, headers: Mapping[str, HeaderValue]) -> OutgoingMessage:
    """``delivery`` published again unchanged but for ``headers`` (its id stays, so
    duplicate elimination downstream still recognises it)."""
    return OutgoingMessage(
        body=delivery.body,
        message_id=delivery.message_id,
        correlation_id=delivery.correlation_id,
        headers=headers,
        content_type=delivery.content_type or "application/octet-stream",
        type=delivery.type,
        app_id=delivery.app_id,
        timestamp=delivery.timestamp,
    )


def waiting(delivery: Delivery, progress: Progress) -> OutgoingMessage:
    """The copy that waits in a delay queue, carrying its progress so far."""
    return onward(delivery, {**carried_headers(delivery.headers), **progress.headers()})


def dead_letter(
    delivery: Delivery,
    *,
    outcome: str,
    reason: str,
    progress: Progress | None = None,
    accepted_at: float | None = None,
) -> OutgoingMessage:
    """The dead-letter queue entry: the original body and headers, plus why it is there,
    its attempts, the last error and when things happened (epoch milliseconds)."""
    headers = carried_headers(delivery.headers)
    if progress is not None:
        headers.update(progress.headers())
    headers.update(
        {OUTCOME: outcome, REASON: reason[:500], DEAD_LETTERED_AT: time_header(time.time())}
    )
    if accepted_at is not None:
        headers[ACCEPTED_AT] = time_header(accepted_at)
    return onward(delivery, headers)
