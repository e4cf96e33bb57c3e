"""Reading the parts of a parsed SOAP envelope: ebXML header, manifest, error lists, faults."""

from __future__ import annotations

from lxml import etree

from mhs.ebxml.model import (
    NS_EB,
    NS_NASP,
    NS_SOAP,
    NS_XLINK,
    EbxmlError,
    ErrorDetail,
    MessageHeader,
)
from mhs.ebxml.safexml import text_of

_SOAP = f"{{{NS_SOAP}}}"
_EB = f"{{{NS_EB}}}"
_NASP = f"{{{NS_NASP}}}"

ENVELOPE = _SOAP + "Envelope"
SOAP_HEADER = _SOAP + "Header"
SOAP_BODY = _SOAP + "Body"
SOAP_FAULT = _SOAP + "Fault"
SOAP_ACTOR = _SOAP + "actor"
MESSAGE_HEADER = _EB + "MessageHeader"
MESSAGE_DATA = _EB + "MessageData"
ACK_REQUESTED = _EB + "AckRequested"
SYNC_REPLY = _EB + "SyncReply"
DUPLICATE_ELIMINATION = _EB + "DuplicateElimination"
ERROR_LIST = _EB + "ErrorList"
MANIFEST = _EB + "Manifest"
REFERENCE = _EB + "Reference"
DESCRIPTION = _EB + "Description"
HREF = f"{{{NS_XLINK}}}href"

PARTY_ID = _EB + "PartyId"
# eb:MessageHeader's required fields: (tag, name in error messages), in the schema's order.
_REQUIRED = (
    (_EB + "From", "eb:From/eb:PartyId"),
    (_EB + "To", "eb:To/eb:PartyId"),
    (_EB + "CPAId", "eb:CPAId"),
    (_EB + "ConversationId", "eb:ConversationId"),
    (_EB + "Service", "eb:Service"),
    (_EB + "Action", "eb:Action"),
    (_EB + "MessageId", "eb:MessageData/eb:MessageId"),
    (_EB + "Timestamp", "eb:MessageData/eb:Timestamp"),
)
_PARTIES = frozenset({_EB + "From", _EB + "To"})
_REF_TO_MESSAGE_ID = _EB + "RefToMessageId"
_TOP_FIELDS = frozenset({_EB + "CPAId", _EB + "ConversationId", _EB + "Service", _EB + "Action"})
_DATA_FIELDS = frozenset({_EB + "MessageId", _EB + "Timestamp", _REF_TO_MESSAGE_ID})


def _child(parent: etree._Element, tag: str) -> etree._Element | None:
    # A loop over the children beats find(): lxml's find() runs ElementPath in Python.
    for child in parent:
        if child.tag == tag:
            return child
    return None


def _header_fields(header: etree._Element) -> tuple[dict[str, str | None], bool]:
    found: dict[str, str | None] = {}
    duplicate_elimination = False
    for child in header:
        tag = child.tag
        if tag == MESSAGE_DATA:
            for item in child:
                if item.tag in _DATA_FIELDS and found.get(item.tag) is None:
                    found[item.tag] = text_of(item)
        elif tag in _PARTIES:
            if found.get(tag) is None:
                found[tag] = text_of(_child(child, PARTY_ID))
        elif tag == DUPLICATE_ELIMINATION:
            duplicate_elimination = True
        elif tag in _TOP_FIELDS and found.get(tag) is None:
            found[tag] = text_of(child)
    return found, duplicate_elimination


def require_envelope(root: etree._Element, where: str) -> None:
    """Raise unless ``root`` is a SOAP 1.1 Envelope."""
    if root.tag != ENVELOPE:
        raise EbxmlError(f"{where}: the root element is {root.tag!r}, not a SOAP 1.1 Envelope")


def read_header(root: etree._Element, where: str) -> MessageHeader:
    """The eb:MessageHeader and its sibling flags, or EbxmlError naming what is missing."""
    require_envelope(root, where)
    soap_header = _child(root, SOAP_HEADER)
    if soap_header is None:
        raise EbxmlError(f"{where}: SOAP:Envelope has no SOAP:Header")
    header = ack = sync = None
    for child in soap_header:
        tag = child.tag
        if tag == MESSAGE_HEADER:
            header = header if header is not None else child
        elif tag == ACK_REQUESTED:
            ack = child
        elif tag == SYNC_REPLY:
            sync = child
    if header is None:
        raise EbxmlError(f"{where}: SOAP:Header has no eb:MessageHeader")
    found, duplicate_elimination = _header_fields(header)
    values: list[str] = []
    missing: list[str] = []
    for tag, name in _REQUIRED:
        value = found.get(tag)
        if value is None:
            missing.append(name)
        else:
            values.append(value)
    if missing:
        raise EbxmlError(f"{where}: eb:MessageHeader lacks {', '.join(missing)}")
    from_party, to_party, cpa_id, conversation_id, service, action, message_id, timestamp = values
    return MessageHeader(
        from_party_id=from_party,
        to_party_id=to_party,
        cpa_id=cpa_id,
        conversation_id=conversation_id,
        service=service,
        action=action,
        message_id=message_id,
        timestamp=timestamp,
        ref_to_message_id=found.get(_REF_TO_MESSAGE_ID),
        duplicate_elimination=duplicate_elimination,
        ack_requested=ack is not None,
        ack_actor=(ack.get(SOAP_ACTOR) or None) if ack is not None else None,
        sync_reply=sync is not None,
    )


def manifest_descriptions(root: etree._Element) -> dict[str, str]:
    """Each manifest Reference's description, keyed by the content id its ``cid:`` names."""
    body = _child(root, SOAP_BODY)
    manifest = _child(body, MANIFEST) if body is not None else None
    if manifest is None:
        return {}
    descriptions: dict[str, str] = {}
    for reference in manifest.iterfind(REFERENCE):
        href = reference.get(HREF) or ""
        if href.startswith("cid:"):
            descriptions[href[4:]] = reference.findtext(DESCRIPTION) or ""
    return descriptions


def _attribute(element: etree._Element, name: str) -> str | None:
    # ebMS qualifies these attributes with eb:, but some senders leave them bare.
    return element.get(_EB + name) or element.get(name) or None


def ebxml_errors(root: etree._Element) -> tuple[ErrorDetail, ...] | None:
    """The eb:ErrorList's errors, or None when the envelope has no ErrorList."""
    soap_header = _child(root, SOAP_HEADER)
    error_list = _child(soap_header, ERROR_LIST) if soap_header is not None else None
    if error_list is None:
        return None
    return tuple(
        ErrorDetail(
            kind="ebxml",
            code=_attribute(error, "errorCode") or "",
            severity=_attribute(error, "severity") or "",
            description=text_of(error.find(DESCRIPTION)) or "",
            code_context=_attribute(error, "codeContext"),
            location=_attribute(error, "location"),
        )
        for error in error_list.iterfind(_EB + "Error")
    )


def soap_fault_errors(root: etree._Element) -> tuple[ErrorDetail, ...] | None:
    """The nasp errors of a SOAP:Fault in the body, or None when there is no fault."""
    body = _child(root, SOAP_BODY)
    fault = _child(body, SOAP_FAULT) if body is not None else None
    if fault is None:
        return None
    return tuple(
        ErrorDetail(
            kind="soap",
            code=text_of(error.find(_NASP + "errorCode")) or "",
            severity=text_of(error.find(_NASP + "severity")) or "",
            description=text_of(error.find(_NASP + "description")) or "",
            code_context=text_of(error.find(_NASP + "codeContext")),
            location=text_of(error.find(_NASP + "location")),
        )
        for error in fault.iterfind(f".//{_NASP}error")
    )
