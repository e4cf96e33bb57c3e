"""Spine's synchronous messages: one SOAP 1.1 exchange with WS-Addressing headers, the HL7
request in the Body, the answer's HL7 inside ``retrievalQueryResponse``."""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass

from lxml import etree

from mhs.ebxml.hl7 import RECEIVER, SENDER, first_asid
from mhs.ebxml.model import ASID_ROOT, NS_HL7, NS_SOAP, EbxmlError
from mhs.ebxml.safexml import parse_xml, text_of

NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
# HL7 has no prefix on the envelope, so the payload keeps its own default namespace.
_NSMAP = {"SOAP-ENV": NS_SOAP, "wsa": NS_WSA}
_S = f"{{{NS_SOAP}}}"
_W = f"{{{NS_WSA}}}"
_H = f"{{{NS_HL7}}}"
RESPONSE_WRAPPER = "retrievalQueryResponse"


@dataclass(frozen=True, slots=True)
class SyncMessage:
    """A synchronous request or answer: its WS-Addressing facts and the HL7 it carries."""

    message_id: str
    action: str
    from_asid: str | None
    to_asid: str | None
    payload: etree._Element
    relates_to: str | None = None

    @property
    def interaction_id(self) -> str:
        """The HL7 interaction: the last segment of ``service/interaction``."""
        return self.action.rsplit("/", 1)[-1]


def _device(tag: str, asid: str) -> etree._Element:
    function = etree.Element(_H + tag, nsmap={"hl7": NS_HL7})
    device = etree.SubElement(function, _H + "device")
    etree.SubElement(device, _H + "id", root=ASID_ROOT, extension=asid)
    return function


def _address(tag: str) -> etree._Element:
    element = etree.Element(_W + tag)
    etree.SubElement(element, _W + "Address")
    return element


def build_sync(message: SyncMessage, *, to: str, response: bool = False) -> bytes:
    """The SOAP envelope of ``message``; ``to`` is wsa:To (the service's address). An answer
    (``response``) wraps its HL7 in ``retrievalQueryResponse`` and says what it relates to."""
    envelope = etree.Element(_S + "Envelope", nsmap=_NSMAP)
    header = etree.SubElement(envelope, _S + "Header")
    etree.SubElement(header, _W + "MessageID").text = f"uuid:{message.message_id}"
    etree.SubElement(header, _W + "Action").text = message.action
    etree.SubElement(header, _W + "To").text = to
    header.append(_address("From"))
    if message.to_asid:
        header.append(_device("communicationFunctionRcv", message.to_asid))
    if message.from_asid:
        header.append(_device("communicationFunctionSnd", message.from_asid))
    if message.relates_to:
        etree.SubElement(header, _W + "RelatesTo").text = f"uuid:{message.relates_to}"
    else:
        header.append(_address("ReplyTo"))
    body = etree.SubElement(envelope, _S + "Body")
    if response:
        body = etree.SubElement(body, _H + RESPONSE_WRAPPER, nsmap={None: NS_HL7})  # type: ignore[dict-item]
    body.append(message.payload)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def read_sync(body: bytes, where: str) -> SyncMessage:
    """The facts and HL7 of a synchronous request or answer; EbxmlError if it is neither."""
    root = parse_xml(body, where)
    header, soap_body = root.find(_S + "Header"), root.find(_S + "Body")
    if root.tag != _S + "Envelope" or header is None or soap_body is None:
        raise EbxmlError(f"{where}: not a SOAP envelope with a Header and a Body")
    message_id = text_of(header.find(_W + "MessageID"))
    action = text_of(header.find(_W + "Action"))
    if message_id is None or action is None:
        raise EbxmlError(f"{where}: wsa:MessageID and wsa:Action are required")
    content = [child for child in soap_body if isinstance(child.tag, str)]
    if len(content) == 1 and etree.QName(content[0]).localname == RESPONSE_WRAPPER:
        content = [child for child in content[0] if isinstance(child.tag, str)]
    if len(content) != 1:
        raise EbxmlError(f"{where}: the SOAP Body must hold exactly one HL7 message")
    relates_to = text_of(header.find(_W + "RelatesTo"))
    return SyncMessage(
        message_id=message_id.removeprefix("uuid:"),
        action=action,
        from_asid=first_asid(header.iterchildren(SENDER)),
        to_asid=first_asid(header.iterchildren(RECEIVER)),
        payload=content[0],
        relates_to=relates_to.removeprefix("uuid:") if relates_to else None,
    )


def hl7_text(element: etree._Element) -> str:
    """An HL7 element as a document of its own (its namespaces declared on it)."""
    copy = deepcopy(element)
    # Without this it would carry the envelope's SOAP and WS-Addressing declarations too.
    etree.cleanup_namespaces(copy)
    return str(etree.tostring(copy, encoding="unicode"))


def hl7_element(payload: str, where: str) -> etree._Element:
    """The HL7 ``payload`` parsed, to put in an envelope."""
    return parse_xml(payload.encode("utf-8"), where)
