"""Facts read from HL7 v3 payloads."""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from mhs.ebxml.model import ASID_ROOT, NS_HL7, EbxmlError
from mhs.ebxml.safexml import parse_xml

_HL7 = f"{{{NS_HL7}}}"
SENDER = f"{_HL7}communicationFunctionSnd"
RECEIVER = f"{_HL7}communicationFunctionRcv"
_DEVICE = f"{_HL7}device"
_ID = f"{_HL7}id"


def first_asid(functions: Iterable[etree._Element]) -> str | None:
    """The first ASID (a device id with the ASID root) of ``functions``, communicationFunction
    elements (``function/device/id``), in their order."""
    for element in functions:
        for device in element.iterchildren(_DEVICE):
            for device_id in device.iterchildren(_ID):
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
    # lxml's iter() walks the tree in C, lazily: the search stops at the first match near
    # the top of the wrapper; ElementPath (".//") would walk it in Python.
    return first_asid(root.iter(SENDER)), first_asid(root.iter(RECEIVER))
