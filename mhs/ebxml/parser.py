"""Reading ebXML multipart messages and SOAP envelopes from the network, safely."""

from __future__ import annotations

import base64

from lxml import etree

from mhs.ebxml.envelope import manifest_descriptions, read_header
from mhs.ebxml.mime import MultipartType, Part, first_part, multipart_type, split_parts
from mhs.ebxml.model import Attachment, EbxmlError, EbxmlMessage, MessageHeader
from mhs.ebxml.safexml import parse_xml

_BINARY_ENCODINGS = frozenset({"base64", "binary"})


def _where(number: int, part: Part) -> str:
    cid = part.content_id
    return f"MIME part {number} (Content-Id <{cid}>)" if cid else f"MIME part {number}"


def _is_xml_type(part: Part) -> bool:
    if part.header("Content-Type") is None:
        # No Content-Type at all: tolerated, the XML parser decides.
        return True
    main, sub = part.maintype, part.subtype
    return main in ("text", "application") and (sub == "xml" or sub.endswith("+xml"))


def envelope_part(part: Part, kind: MultipartType) -> tuple[bytes, str]:
    """The first part's content and its description for error messages, checked to be the
    ebXML envelope: the part ``start`` names (when given), and XML."""
    where = _where(1, part)
    if kind.start is not None and part.content_id != kind.start:
        raise EbxmlError(
            f"{where} is not the part the Content-Type's start parameter names "
            f"(<{kind.start}>): the ebXML envelope must be the first part"
        )
    if not _is_xml_type(part):
        raise EbxmlError(f"{where} is {part.content_type}, not the text/xml ebXML envelope")
    return part.content(where), where


def _related(content_type: str) -> MultipartType:
    kind = multipart_type(content_type)
    if kind.subtype != "related":
        raise EbxmlError(
            f"Content-Type {content_type!r} is multipart/{kind.subtype}, not multipart/related"
        )
    return kind


def _decode_text(data: bytes, where: str, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EbxmlError(
            f"{where}: the {what} is not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None


def _attachment(part: Part, where: str, descriptions: dict[str, str]) -> Attachment:
    data = part.content(where)
    cid = part.content_id or ""
    content_type = part.header("Content-Type") or "text/plain"
    text: str | None = None
    if part.transfer_encoding not in _BINARY_ENCODINGS:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return Attachment(
        content_id=cid,
        content_type=content_type,
        payload=text if text is not None else base64.b64encode(data).decode("ascii"),
        is_base64=text is None,
        description=descriptions.get(cid, ""),
    )


def parse_message(content_type: str, body: bytes) -> EbxmlMessage:
    """Parse an ebXML multipart/related message (LF or CRLF line ends).

    Part 1 is the SOAP envelope (the part ``start`` names, if the Content-Type has one),
    part 2 the HL7 payload as text, parts 3 on the attachments: base64 or binary transfer
    encoded parts, and 8bit parts that are not UTF-8, come back as base64 text with
    ``is_base64``; content ids lose their angle brackets; descriptions come from the
    manifest. Raises EbxmlError, saying what is wrong and where, for anything else:
    nothing else escapes, whatever the input.
    """
    kind = _related(content_type)
    parts = split_parts(body, kind)
    data, where = envelope_part(parts[0], kind)
    ebxml = _decode_text(data, where, "ebXML envelope")
    root = parse_xml(data, where)
    header = read_header(root, where)
    payload: str | None = None
    if len(parts) > 1:
        payload_where = _where(2, parts[1])
        payload = _decode_text(parts[1].content(payload_where), payload_where, "HL7 payload")
    attachments: tuple[Attachment, ...] = ()
    if len(parts) > 2:
        descriptions = manifest_descriptions(root)
        attachments = tuple(
            _attachment(part, _where(number, part), descriptions)
            for number, part in enumerate(parts[2:], start=3)
        )
    return EbxmlMessage(header=header, ebxml=ebxml, payload=payload, attachments=attachments)


def parse_header(ebxml: str | bytes) -> MessageHeader:
    """The eb:MessageHeader (with the AckRequested actor, SyncReply and
    DuplicateElimination flags) of a SOAP envelope on its own. Raises EbxmlError."""
    if isinstance(ebxml, str):
        try:
            data = ebxml.encode("utf-8")
        except UnicodeEncodeError as error:
            raise EbxmlError(f"the ebXML envelope is not encodable text: {error.reason}") from None
    else:
        data = ebxml
    return read_header(parse_xml(data, "the ebXML envelope"), "the ebXML envelope")


def peek_header(content_type: str, body: bytes) -> MessageHeader:
    """The MessageHeader of an ebXML multipart message, reading only its first part: the
    payload and attachments are neither split out nor decoded. Raises EbxmlError."""
    kind = _related(content_type)
    data, where = envelope_part(first_part(body, kind), kind)
    return read_header(parse_xml(data, where), where)


def envelope_root(content_type: str, body: bytes) -> etree._Element:
    """The parsed SOAP envelope of a multipart body's first part (for reply bodies)."""
    kind = multipart_type(content_type)
    data, where = envelope_part(first_part(body, kind), kind)
    return parse_xml(data, where)
