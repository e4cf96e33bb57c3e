"""Writing ebXML requests, Acknowledgments, MessageErrors and SOAP faults.

Text is laid into fixed templates with escaping rather than built as a tree: the request
writer is on every outbound message's path and this is several times faster than lxml.
Envelopes are written on one line after the XML declaration, because MIME readers (ours
included) work line by line and a one-line envelope is about a fifth cheaper to read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from mhs.ebxml.mime import find_delimiter_line
from mhs.ebxml.model import (
    ACTION_ACKNOWLEDGMENT,
    ACTION_MESSAGE_ERROR,
    ACTOR_SOAP_NEXT,
    ACTOR_TO_PARTY_MSH,
    CONTENT_ID_DOMAIN,
    EBXML_CONTENT_ID,
    EBXML_SERVICE,
    ERROR_CODE_CONTEXT,
    MIME_BOUNDARY,
    NS_EB,
    NS_HL7EBXML,
    NS_NASP,
    NS_SOAP,
    NS_XLINK,
    PARTY_TYPE,
    REQUEST_CONTENT_TYPE,
    TMS_CODE_CONTEXT,
    Attachment,
    EbxmlError,
    ErrorDetail,
    ExternalReference,
    MessageHeader,
)

_DELIMITER = f"--{MIME_BOUNDARY}"
_DELIMITER_BYTES = _DELIMITER.encode("ascii")
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_ENVELOPE_OPEN = (
    '<SOAP:Envelope xmlns:xsi="http://www.w3c.org/2001/XML-Schema-Instance"'
    f' xmlns:SOAP="{NS_SOAP}" xmlns:eb="{NS_EB}" xmlns:hl7ebxml="{NS_HL7EBXML}"'
    f' xmlns:xlink="{NS_XLINK}">'
)

# Characters that are either not allowed in XML 1.0 at all, or must be written as a
# reference: & < > " always, and tab, CR and LF because parsers normalise them away
# (CR in text, all three in attribute values).
_NEEDS_CARE = re.compile(
    "[^\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_REFERENCES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "\t": "&#9;",
    "\n": "&#10;",
    "\r": "&#13;",
}
# Content ids and message ids go into MIME headers and cid: URLs.
_MIME_ID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+")
_MIME_TYPE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def _esc(value: str, name: str) -> str:
    if _NEEDS_CARE.search(value) is None:
        return value
    bad = _NOT_XML.search(value)
    if bad is not None:
        raise EbxmlError(f"{name} holds {bad.group()!r}, a character XML cannot carry")
    return _NEEDS_CARE.sub(lambda match: _REFERENCES[match.group()], value)


def _mime_id(value: str, name: str) -> str:
    if _MIME_ID.fullmatch(value) is None:
        raise EbxmlError(
            f"{name} {value!r} cannot go in a MIME Content-Id: use printable ASCII "
            "without spaces or angle brackets"
        )
    return value


def _party(party_id: str, name: str) -> str:
    return f'<eb:PartyId eb:type="{PARTY_TYPE}">{_esc(party_id, name)}</eb:PartyId>'


def _message_header(
    *,
    from_party_id: str,
    to_party_id: str,
    cpa_id: str,
    conversation_id: str,
    service: str,
    action: str,
    message_id: str,
    timestamp: str,
    ref_to_message_id: str | None,
    duplicate_elimination: bool,
) -> str:
    ref = (
        f"<eb:RefToMessageId>{_esc(ref_to_message_id, 'RefToMessageId')}</eb:RefToMessageId>"
        if ref_to_message_id is not None
        else ""
    )
    duplicates = "<eb:DuplicateElimination/>" if duplicate_elimination else ""
    return (
        '<eb:MessageHeader SOAP:mustUnderstand="1" eb:version="2.0">'
        f"<eb:From>{_party(from_party_id, 'From PartyId')}</eb:From>"
        f"<eb:To>{_party(to_party_id, 'To PartyId')}</eb:To>"
        f"<eb:CPAId>{_esc(cpa_id, 'CPAId')}</eb:CPAId>"
        f"<eb:ConversationId>{_esc(conversation_id, 'ConversationId')}</eb:ConversationId>"
        f"<eb:Service>{_esc(service, 'Service')}</eb:Service>"
        f"<eb:Action>{_esc(action, 'Action')}</eb:Action>"
        "<eb:MessageData>"
        f"<eb:MessageId>{_esc(message_id, 'MessageId')}</eb:MessageId>"
        f"<eb:Timestamp>{_esc(timestamp, 'Timestamp')}</eb:Timestamp>"
        f"{ref}"
        "</eb:MessageData>"
        f"{duplicates}"
        "</eb:MessageHeader>"
    )


def _reference(href: str, description: str, document_id: str | None, what: str) -> str:
    reference_id = f' eb:id="{_esc(document_id, f"{what} document_id")}"' if document_id else ""
    text = (
        f'<eb:Description xml:lang="en">{_esc(description, f"{what} description")}</eb:Description>'
        if description
        else ""
    )
    return f'<eb:Reference{reference_id} xlink:href="{href}">{text}</eb:Reference>'


def _references(attachments: Sequence[Attachment], external: Sequence[ExternalReference]) -> str:
    """The manifest References after the HL7 payload's: each attachment part (``cid:``),
    then each document sent in a message of its own (``mid:``)."""
    parts = [
        _reference(
            f"cid:{_esc(a.content_id, 'attachment content_id')}",
            a.description,
            a.document_id,
            "attachment",
        )
        for a in attachments
    ]
    parts += [
        _reference(
            f"mid:{_esc(e.message_id, 'external attachment message_id')}",
            e.description,
            e.document_id,
            "external attachment",
        )
        for e in external
    ]
    return "".join(parts)


def _request_envelope(
    header: MessageHeader,
    message_id: str,
    attachments: Sequence[Attachment],
    external: Sequence[ExternalReference],
) -> str:
    ack = (
        '<eb:AckRequested SOAP:mustUnderstand="1" eb:version="2.0" eb:signed="false"'
        f' SOAP:actor="{_esc(header.ack_actor or ACTOR_TO_PARTY_MSH, "AckRequested actor")}"/>'
        if header.ack_requested
        else ""
    )
    sync = (
        f'<eb:SyncReply SOAP:mustUnderstand="1" eb:version="2.0" SOAP:actor="{ACTOR_SOAP_NEXT}"/>'
        if header.sync_reply
        else ""
    )
    references = _references(attachments, external)
    return (
        f"{_XML_DECLARATION}\r\n{_ENVELOPE_OPEN}<SOAP:Header>"
        + _message_header(
            from_party_id=header.from_party_id,
            to_party_id=header.to_party_id,
            cpa_id=header.cpa_id,
            conversation_id=header.conversation_id,
            service=header.service,
            action=header.action,
            message_id=header.message_id,
            timestamp=header.timestamp,
            ref_to_message_id=header.ref_to_message_id,
            duplicate_elimination=header.duplicate_elimination,
        )
        + ack
        + sync
        + "</SOAP:Header><SOAP:Body>"
        '<eb:Manifest SOAP:mustUnderstand="1" eb:version="2.0">'
        f'<eb:Reference xlink:href="cid:{_esc(message_id, "MessageId")}@{CONTENT_ID_DOMAIN}">'
        '<eb:Schema eb:location="http://www.nhsia.nhs.uk/schemas/HL7-Message.xsd"'
        ' eb:version="1.0"/>'
        '<eb:Description xml:lang="en">HL7 payload</eb:Description>'
        '<hl7ebxml:Payload style="HL7" encoding="XML" version="3.0"/>'
        "</eb:Reference>"
        f"{references}"
        "</eb:Manifest></SOAP:Body></SOAP:Envelope>"
    )


def _part_head(content_id: str, content_type: str, transfer_encoding: str) -> bytes:
    return (
        f"{_DELIMITER}\r\nContent-Id: <{content_id}>\r\nContent-Type: {content_type}\r\n"
        f"Content-Transfer-Encoding: {transfer_encoding}\r\n\r\n"
    ).encode("ascii")


def _part_body(text: str, name: str) -> bytes:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise EbxmlError(f"{name} is not encodable as UTF-8: {error.reason}") from None
    if find_delimiter_line(data, _DELIMITER_BYTES) >= 0:
        raise EbxmlError(f"{name} holds the MIME boundary line {_DELIMITER!r}")
    return data


def build_request(
    header: MessageHeader,
    payload: str,
    attachments: Sequence[Attachment] = (),
    external: Sequence[ExternalReference] = (),
) -> tuple[bytes, str]:
    """The ebXML multipart/related body for ``header``, ``payload`` and ``attachments``,
    and the HTTP Content-Type to send it with (always ``REQUEST_CONTENT_TYPE``).

    Parts: the SOAP envelope (Content-Id ``<ebXMLHeader@spine.nhs.uk>``), the HL7 payload
    (``<{message_id}@spine.nhs.uk>``), then each attachment under ``<{content_id}>``,
    base64 or 8bit as its ``is_base64`` says; ``external`` documents are manifest references
    only (``mid:``). Lines end in CRLF. Raises EbxmlError when
    a value cannot be carried (a character XML forbids, an id unfit for a MIME header, a
    part holding the boundary line).
    """
    message_id = _mime_id(header.message_id, "MessageId")
    chunks = [
        _part_head(EBXML_CONTENT_ID, "text/xml; charset=UTF-8", "8bit"),
        _request_envelope(header, message_id, attachments, external).encode("utf-8"),
        b"\r\n",
        _part_head(f"{message_id}@{CONTENT_ID_DOMAIN}", "text/xml; charset=UTF-8", "8bit"),
        _part_body(payload, "the HL7 payload"),
        b"\r\n",
    ]
    for number, attachment in enumerate(attachments, start=1):
        name = f"attachment {number}"
        content_id = _mime_id(attachment.content_id, f"{name} content_id")
        if _MIME_TYPE.fullmatch(attachment.content_type) is None:
            raise EbxmlError(f"{name} content_type {attachment.content_type!r} is not a MIME type")
        chunks.append(
            _part_head(
                content_id,
                attachment.content_type,
                "base64" if attachment.is_base64 else "8bit",
            )
        )
        chunks.append(_part_body(attachment.payload, name))
        chunks.append(b"\r\n")
    chunks.append(f"{_DELIMITER}--\r\n".encode("ascii"))
    return b"".join(chunks), REQUEST_CONTENT_TYPE


def _reply(received: MessageHeader, action: str, message_id: str, timestamp: str) -> str:
    return _message_header(
        from_party_id=received.to_party_id,
        to_party_id=received.from_party_id,
        cpa_id=received.cpa_id,
        conversation_id=received.conversation_id,
        service=EBXML_SERVICE,
        action=action,
        message_id=message_id,
        timestamp=timestamp,
        ref_to_message_id=received.message_id,
        duplicate_elimination=False,
    )


def build_acknowledgment(received: MessageHeader, *, message_id: str, timestamp: str) -> bytes:
    """The ebXML Acknowledgment of ``received``: From and To swapped, CPAId and
    ConversationId copied, RefToMessageId = the received MessageId, and its own
    ``message_id`` and ``timestamp`` (the NHS adaptor's copying of the received timestamp
    is not reproduced)."""
    envelope = (
        f"{_XML_DECLARATION}\r\n{_ENVELOPE_OPEN}<SOAP:Header>"
        + _reply(received, ACTION_ACKNOWLEDGMENT, message_id, timestamp)
        + '<eb:Acknowledgment SOAP:mustUnderstand="1" eb:version="2.0"'
        f' SOAP:actor="{ACTOR_TO_PARTY_MSH}">'
        f"<eb:Timestamp>{_esc(timestamp, 'Timestamp')}</eb:Timestamp>"
        f"<eb:RefToMessageId>{_esc(received.message_id, 'MessageId')}</eb:RefToMessageId>"
        f"<eb:From>{_party(received.to_party_id, 'To PartyId')}</eb:From>"
        "</eb:Acknowledgment>"
        "</SOAP:Header><SOAP:Body/></SOAP:Envelope>"
    )
    return envelope.encode("utf-8")


def build_message_error(
    received: MessageHeader, errors: Sequence[ErrorDetail], *, message_id: str, timestamp: str
) -> bytes:
    """The ebXML MessageError answering ``received``, with one eb:Error per ``errors`` entry
    (codeContext defaults to the ebMS one; highestSeverity is Error if any error is)."""
    if not errors:
        raise EbxmlError("a MessageError needs at least one error")
    highest = "Error" if any(e.severity == "Error" for e in errors) else "Warning"
    items = "".join(
        f'<eb:Error eb:codeContext="{_esc(e.code_context or ERROR_CODE_CONTEXT, "codeContext")}"'
        f' eb:errorCode="{_esc(e.code, "errorCode")}"'
        f' eb:severity="{_esc(e.severity, "severity")}"'
        + (f' eb:location="{_esc(e.location, "location")}"' if e.location else "")
        + ">"
        f'<eb:Description xml:lang="en-GB">{_esc(e.description, "description")}'
        "</eb:Description>"
        "</eb:Error>"
        for e in errors
    )
    envelope = (
        f"{_XML_DECLARATION}\r\n{_ENVELOPE_OPEN}<SOAP:Header>"
        + _reply(received, ACTION_MESSAGE_ERROR, message_id, timestamp)
        + '<eb:ErrorList SOAP:mustUnderstand="1" eb:version="2.0"'
        f' eb:highestSeverity="{highest}">'
        f"{items}"
        "</eb:ErrorList>"
        "</SOAP:Header><SOAP:Body/></SOAP:Envelope>"
    )
    return envelope.encode("utf-8")


def build_soap_fault(errors: Sequence[ErrorDetail]) -> bytes:
    """A Spine-style SOAP fault (SOAP:Server, "Application Exception") whose detail lists
    ``errors`` as nasp:error elements (codeContext defaults to ``urn:nhs:names:error:tms``;
    location is written only when given)."""
    items = "".join(
        "<nasp:error>"
        f"<nasp:codeContext>{_esc(e.code_context or TMS_CODE_CONTEXT, 'codeContext')}"
        "</nasp:codeContext>"
        f"<nasp:errorCode>{_esc(e.code, 'errorCode')}</nasp:errorCode>"
        f"<nasp:severity>{_esc(e.severity, 'severity')}</nasp:severity>"
        + (f"<nasp:location>{_esc(e.location, 'location')}</nasp:location>" if e.location else "")
        + f"<nasp:description>{_esc(e.description, 'description')}</nasp:description>"
        "</nasp:error>"
        for e in errors
    )
    envelope = (
        f"{_XML_DECLARATION}\r\n"
        f'<SOAP:Envelope xmlns:SOAP="{NS_SOAP}"><SOAP:Body><SOAP:Fault>'
        "<faultcode>SOAP:Server</faultcode>"
        "<faultstring>Application Exception</faultstring>"
        "<detail>"
        f'<nasp:errorList xmlns:nasp="{NS_NASP}">'
        f"{items}"
        "</nasp:errorList>"
        "</detail>"
        "</SOAP:Fault></SOAP:Body></SOAP:Envelope>"
    )
    return envelope.encode("utf-8")


def timestamp_now() -> str:
    """The current UTC time as ebXML writes it: ``%Y-%m-%dT%H:%M:%SZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
