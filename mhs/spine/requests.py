"""ebXML requests as they travel to Spine and from it: one builder for a hosted instance's
message (the delivery workers) and for Spine's own replies (the proxy playing Spine).

The interaction's reliability settings give the header's flags; the SSP headers name the
sending and receiving ASIDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mhs.directory import Interaction, Party
from mhs.ebxml import (
    ACTOR_NEXT_MSH,
    ACTOR_TO_PARTY_MSH,
    Attachment,
    ExternalReference,
    MessageHeader,
    build_request,
    timestamp_now,
)
from mhs.ids import new_id
from mhs.messages.records import OutboundRecord

SPINE_PATHS = {
    "sync": "/sync",
    "async-express": "/reliablemessaging/queryrequest",
    "async-reliable": "/reliablemessaging/reliablerequest",
    "forward-reliable": "/reliablemessaging/forwardreliable",
    "forward-express": "/reliablemessaging/forwardexpress",
}


@dataclass(frozen=True, slots=True)
class SpineRequest:
    """An ebXML request ready to POST, less the per-attempt headers."""

    message_id: str
    interaction_id: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Route:
    """Who sends to whom: party keys and CPA for the ebXML header, ASIDs for the SSP's."""

    from_party_key: str
    to_party_key: str
    cpa_id: str
    from_asid: str
    to_asid: str


def ebxml_request(
    interaction: Interaction,
    action: str,
    route: Route,
    *,
    message_id: str,
    conversation_id: str,
    payload: str,
    attachments: Sequence[Attachment] = (),
    external: Sequence[ExternalReference] = (),
    ref_to_message_id: str | None = None,
) -> SpineRequest:
    """The multipart ebXML message ``action`` with the interaction's reliability flags."""
    reliability = interaction.reliability
    reliable = reliability.ack_requested == "always"
    actor = ACTOR_NEXT_MSH if interaction.pattern == "forward-reliable" else ACTOR_TO_PARTY_MSH
    header = MessageHeader(
        from_party_id=route.from_party_key,
        to_party_id=route.to_party_key,
        cpa_id=route.cpa_id,
        conversation_id=conversation_id,
        service=interaction.service,
        action=action,
        message_id=message_id,
        timestamp=timestamp_now(),
        ref_to_message_id=ref_to_message_id,
        duplicate_elimination=reliability.duplicate_elimination == "always",
        ack_requested=reliable,
        ack_actor=actor if reliable else None,
        sync_reply=reliability.sync_reply_mode == "MSHSignalsOnly",
    )
    body, content_type = build_request(header, payload, attachments, external)
    return SpineRequest(
        message_id=message_id,
        interaction_id=action,
        path=SPINE_PATHS[interaction.pattern],
        body=body,
        headers=spine_headers(
            content_type=content_type,
            soap_action=f"{interaction.service}/{action}",
            from_asid=route.from_asid,
            to_asid=route.to_asid,
            interaction_id=action,
            message_id=message_id,
            correlation_id=conversation_id,
        ),
    )


def spine_headers(
    *,
    content_type: str,
    soap_action: str,
    from_asid: str,
    to_asid: str,
    interaction_id: str,
    message_id: str,
    correlation_id: str,
) -> dict[str, str]:
    """The HTTP headers of a request to Spine: the SSP's (less the per-attempt trace id)
    and, as the NHS adaptor adds them, its tracking ids."""
    return {
        "Content-Type": content_type,
        "SOAPAction": soap_action,
        "Ssp-From": from_asid,
        "Ssp-To": to_asid,
        "Ssp-InteractionID": interaction_id,
        "Message-Id": message_id,
        "Correlation-Id": correlation_id,
        "Interaction-Id": interaction_id,
    }


def spine_request(
    record: OutboundRecord, interaction: Interaction, recipient: Party
) -> SpineRequest:
    """What a delivery worker sends for ``record``."""
    route = Route(
        record.from_party_key, record.to_party_key, recipient.cpa_id, record.from_asid,
        record.to_asid,
    )  # fmt: skip
    attachments = [
        Attachment(
            content_id=f"{new_id()}@spine.nhs.uk",
            content_type=a.content_type,
            payload=a.payload,
            is_base64=a.is_base64,
            description=a.description,
            document_id=a.document_id,
        )
        for a in record.attachments
    ]
    external = [
        ExternalReference(e.message_id, e.description, e.document_id)
        for e in record.external_attachments
    ]
    return ebxml_request(
        interaction,
        record.interaction_id,
        route,
        message_id=record.message_id,
        conversation_id=record.correlation_id,
        payload=record.payload,
        attachments=attachments,
        external=external,
    )
