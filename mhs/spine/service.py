"""Spine's own MHS, as the Spine proxy simulator plays it for messages addressed to Spine.

Spine acknowledges such a message as any MHS would, and for a service that answers (the
interaction's catalogue entry names a ``reply``, e.g. an SCR document list request) it
later sends its reply to the sender's MHS as a message of its own: RefToMessageId is the
request's MessageId, the ConversationId is the request's, From is Spine's party key and
To the sender's, with the reply interaction's reliability flags. The HL7 payload is the
answer's template filled for the request (mhs.spine.responders).
"""

from __future__ import annotations

from mhs.directory import Interaction, Party
from mhs.ebxml import MessageHeader
from mhs.spine.requests import Route, SpineRequest, ebxml_request
from mhs.spine.responders import Asked, answer_payload


def spine_reply(
    request: MessageHeader,
    asked: Asked,
    action: str,
    interaction: Interaction,
    *,
    message_id: str,
    spine: Party,
    sender: Party,
) -> SpineRequest:
    """Spine's reply ``action`` to ``request`` (which ``asked``), from ``spine`` to ``sender``."""
    payload = answer_payload(
        action, asked, message_id=message_id, spine_asid=spine.asid, receiver_asid=sender.asid
    )
    route = Route(spine.party_key, sender.party_key, sender.cpa_id, spine.asid, sender.asid)
    return ebxml_request(
        interaction,
        action,
        route,
        message_id=message_id,
        conversation_id=request.conversation_id,
        payload=payload,
        ref_to_message_id=request.message_id,
    )
