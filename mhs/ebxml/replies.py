"""What a response body from Spine, the proxy or an inbound MHS says."""

from __future__ import annotations

from lxml import etree

from mhs.ebxml.envelope import ENVELOPE, ebxml_errors, read_header, soap_fault_errors
from mhs.ebxml.model import ACTION_MESSAGE_ERROR, EbxmlError, MessageHeader, SpineReply
from mhs.ebxml.parser import envelope_root
from mhs.ebxml.safexml import parse_xml

_OTHER = SpineReply("other")


def _header_or_none(root: etree._Element) -> MessageHeader | None:
    try:
        return read_header(root, "the reply")
    except EbxmlError:
        return None


def _envelope(content_type: str | None, body: bytes) -> etree._Element | None:
    try:
        if content_type and content_type.strip().lower().startswith("multipart/"):
            root = envelope_root(content_type, body)
        else:
            root = parse_xml(body, "the reply")
    except EbxmlError:
        return None
    return root if root.tag == ENVELOPE else None


def _classify(content_type: str | None, body: bytes) -> SpineReply:
    if not body.strip():
        return SpineReply("empty")
    root = _envelope(content_type, body)
    if root is None:
        return _OTHER
    header = _header_or_none(root)
    fault = soap_fault_errors(root)
    if fault is not None:
        return SpineReply("soap-fault", header=header, errors=fault)
    errors = ebxml_errors(root)
    if errors is not None or (header is not None and header.action == ACTION_MESSAGE_ERROR):
        return SpineReply("message-error", header=header, errors=errors or ())
    return SpineReply("acknowledgment", header=header) if header is not None else _OTHER


def classify_reply(content_type: str | None, body: bytes) -> SpineReply:
    """Classify a response body: ``acknowledgment`` (an ebXML header and no errors),
    ``message-error`` (an eb:ErrorList, or Action MessageError; errors of kind "ebxml"),
    ``soap-fault`` (errors of kind "soap" from the nasp errorList, possibly none),
    ``empty`` (no body, or only blanks) or ``other``. The body may be bare SOAP XML or a
    multipart whose first part is the envelope. Never raises."""
    try:
        return _classify(content_type, body)
    except Exception:
        # Bodies come from the network; a reply we cannot read is "other", never a crash
        # of the delivery worker that asked.
        return _OTHER
