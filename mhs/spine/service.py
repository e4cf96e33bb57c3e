"""Spine's own MHS, as the Spine proxy simulator plays it for messages addressed to Spine.

Spine acknowledges such a message as any MHS would, and for a service that answers (the
interaction's catalogue entry names a ``reply``, e.g. an SCR document list request) it
later sends its reply to the sender's MHS as a message of its own: RefToMessageId is the
request's MessageId, the ConversationId is the request's, From is Spine's party key and
To the sender's, with the reply interaction's reliability flags. The HL7 payload is an
application acknowledgement of the request (typeCode AA) with a successful query
acknowledgement: the simulator holds no care records to return.
"""

from __future__ import annotations

import time

from mhs.directory import Interaction, Party
from mhs.ebxml import ASID_ROOT, MessageHeader
from mhs.spine.requests import Route, SpineRequest, ebxml_request

_HL7_VERSION = "3NPfIT7.2.02"
_INTERACTION_ROOT = "2.16.840.1.113883.2.1.3.2.4.12"


def _device(type_code: str, asid: str) -> str:
    tag = "communicationFunctionRcv" if type_code == "RCV" else "communicationFunctionSnd"
    return (
        f'<{tag} typeCode="{type_code}"><device classCode="DEV" determinerCode="INSTANCE">'
        f'<id root="{ASID_ROOT}" extension="{asid}"/></device></{tag}>'
    )


def reply_payload(
    action: str, *, message_id: str, request_id: str, spine: Party, sender: Party
) -> str:
    """The HL7 wrapper of Spine's reply: ids, the acknowledgement of ``request_id``, the
    sending and receiving devices (ASIDs) and Spine as the author system."""
    created = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return (
        f'<{action} xmlns="urn:hl7-org:v3">'
        f'<id root="{message_id}"/>'
        f'<creationTime value="{created}"/>'
        f'<versionCode code="{_HL7_VERSION}"/>'
        f'<interactionId root="{_INTERACTION_ROOT}" extension="{action}"/>'
        '<processingCode code="P"/><processingModeCode code="T"/><acceptAckCode code="NE"/>'
        f'<acknowledgement typeCode="AA"><messageRef><id root="{request_id}"/></messageRef>'
        "</acknowledgement>"
        f"{_device('RCV', sender.asid)}{_device('SND', spine.asid)}"
        '<ControlActEvent classCode="CACT" moodCode="EVN"><author1 typeCode="AUT">'
        '<AgentSystemSDS classCode="AGNT"><agentSystemSDS classCode="DEV" '
        f'determinerCode="INSTANCE"><id root="{ASID_ROOT}" extension="{spine.asid}"/>'
        "</agentSystemSDS></AgentSystemSDS></author1>"
        '<queryAck type="QueryAck"><queryResponseCode code="OK"/></queryAck>'
        f"</ControlActEvent></{action}>"
    )


def spine_reply(
    request: MessageHeader,
    action: str,
    interaction: Interaction,
    *,
    message_id: str,
    spine: Party,
    sender: Party,
) -> SpineRequest:
    """Spine's reply ``action`` to ``request``, from ``spine`` to ``sender``."""
    payload = reply_payload(
        action, message_id=message_id, request_id=request.message_id, spine=spine, sender=sender
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
