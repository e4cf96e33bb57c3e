"""Facts read from HL7 v3 payloads."""

from __future__ import annotations

from lxml import etree

from mhs.ebxml.model import ASID_ROOT, NS_HL7, EbxmlError
from mhs.ebxml.safexml import parse_xml

_HL7 = f"{{{NS_HL7}}}"
_SENDER_IDS = f".//{_HL7}communicationFunctionSnd/{_HL7}device/{_HL7}id"
_RECEIVER_IDS = f".//{_HL7}communicationFunctionRcv/{_HL7}device/{_HL7}id"


def first_asid(root: etree._Element, path: str) -> str | None:
    """The first ASID (a device id with the ASID root) at ``path`` under ``root``."""
    # iterfind walks lazily, so the search stops at the first match near the top of the
    # wrapper instead of visiting the whole (possibly large) payload.
    for device_id in root.iterfind(path):
        if device_id.get("root") == ASID_ROOT:
            extension = (device_id.get("extension") or "").strip()
            if extension:
                return extension
    return None


def extract_device_asids(hl7_payload: str) -> tuple[str | None, str | None]:
    """(sender ASID, receiver ASID) from the payload's communicationFunctionSnd and
    communicationFunctionRcv device ids with the ASID root, None where absent. Raises
    EbxmlError if the payload is not well-formed XML (or holds a DOCTYPE)."""
    try:
        data = hl7_payload.encode("utf-8")
    except UnicodeEncodeError as error:
        raise EbxmlError(f"the HL7 payload is not encodable text: {error.reason}") from None
    root = parse_xml(data, "the HL7 payload")
    return first_asid(root, _SENDER_IDS), first_asid(root, _RECEIVER_IDS)
