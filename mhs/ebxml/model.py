"""The ebXML message model shared by the writer and the parser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_EB = "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"
NS_HL7EBXML = "urn:hl7-org:transport/ebXML/DSTUv1.0"
NS_XLINK = "http://www.w3.org/1999/xlink"
NS_HL7 = "urn:hl7-org:v3"
NS_NASP = "http://national.carerecords.nhs.uk/schema/"

PARTY_TYPE = "urn:nhs:names:partyType:ocs+serviceInstance"
EBXML_SERVICE = "urn:oasis:names:tc:ebxml-msg:service"
ACTION_ACKNOWLEDGMENT = "Acknowledgment"
ACTION_MESSAGE_ERROR = "MessageError"
ACTOR_TO_PARTY_MSH = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
ACTOR_NEXT_MSH = "urn:oasis:names:tc:ebxml-msg:actor:nextMSH"
ACTOR_SOAP_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"
ERROR_CODE_CONTEXT = "urn:oasis:names:tc:ebxml-msg:service:errors"
TMS_CODE_CONTEXT = "urn:nhs:names:error:tms"
MIME_BOUNDARY = "--=_MIME-Boundary"
EBXML_CONTENT_ID = "ebXMLHeader@spine.nhs.uk"
CONTENT_ID_DOMAIN = "spine.nhs.uk"
REQUEST_CONTENT_TYPE = (
    f'multipart/related; boundary="{MIME_BOUNDARY}"; type="text/xml"; start="<{EBXML_CONTENT_ID}>"'
)
ASID_ROOT = "1.2.826.0.1285.0.2.0.107"

# EIS Part 2 §2.5.4: at most 100 MIME parts, 5 MB per part.
MAX_PARTS = 100
MAX_PART_BYTES = 5_000_000


class EbxmlError(ValueError):
    """The message is not valid ebXML; the text says what is wrong and where."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A MIME part after the HL7 payload. ``payload`` is base64 text when ``is_base64``."""

    content_id: str
    content_type: str
    payload: str
    is_base64: bool
    description: str = ""
    # The manifest Reference's eb:id, when the sender names its documents.
    document_id: str | None = None


@dataclass(frozen=True, slots=True)
class ExternalReference:
    """A manifest Reference to a document sent in a message of its own (``mid:``)."""

    message_id: str
    description: str
    document_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The eb:MessageHeader and its sibling header elements."""

    from_party_id: str
    to_party_id: str
    cpa_id: str
    conversation_id: str
    service: str
    action: str
    message_id: str
    timestamp: str
    ref_to_message_id: str | None = None
    duplicate_elimination: bool = False
    ack_requested: bool = False
    ack_actor: str | None = None
    sync_reply: bool = False


@dataclass(frozen=True, slots=True)
class EbxmlMessage:
    """A parsed ebXML multipart message. ``ebxml`` is the SOAP envelope text as received."""

    header: MessageHeader
    ebxml: str
    payload: str | None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One error from an ebXML ErrorList (``kind="ebxml"``) or a SOAP fault (``kind="soap"``)."""

    kind: Literal["ebxml", "soap"]
    code: str
    severity: str
    description: str
    code_context: str | None = None
    location: str | None = None


ReplyKind = Literal["acknowledgment", "message-error", "soap-fault", "empty", "other"]


@dataclass(frozen=True, slots=True)
class SpineReply:
    """What a Spine (or proxy, or inbound MHS) response body says."""

    kind: ReplyKind
    header: MessageHeader | None = None
    errors: tuple[ErrorDetail, ...] = ()
