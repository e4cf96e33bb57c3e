"""Spine's answers, per interaction: HL7 filled from the templates beside this module.

Every answer is the same wrapper (templates/reply.xml): ids, an acknowledgement (typeCode
AA) of the request's HL7 id, the receiving and sending devices and Spine as author. Inside
it goes the answer interaction's own ``<ID>.detail.xml`` (into the acknowledgement: an
application acknowledgement's text) and ``<ID>.xml`` (into the ControlActEvent: a PDS
retrieval, an SCR document list), or else a plain successful query acknowledgement. The
patient is the one the request names by NHS number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from xml.sax.saxutils import quoteattr

from lxml import etree

from mhs.ebxml import NS_HL7, EbxmlError
from mhs.ebxml.soap import hl7_element
from mhs.ids import new_id

_TEMPLATES = Path(__file__).with_name("templates")
NHS_NUMBER_ROOT = "2.16.840.1.113883.2.1.4.1"
# A test NHS number (valid check digit, never issued) for a request that names none.
DEFAULT_NHS_NUMBER = "9000000009"
# What Spine's application acknowledgement says it did with the request it acknowledges.
ACK_DETAILS = {"REPC_IN150016UK05": "GP Summary upload successful"}
DEFAULT_ACK_DETAIL = "Message received and processed successfully"


@dataclass(frozen=True, slots=True)
class Asked:
    """What an answer takes from its request: the HL7 id it acknowledges, the patient."""

    request_id: str
    nhs_number: str
    interaction_id: str


def asked(payload: etree._Element | None, *, message_id: str, interaction_id: str) -> Asked:
    """What ``payload`` (the request's HL7; None if it had none) asks about; its HL7 id, or
    else ``message_id``, is the one acknowledged."""
    request_id, nhs_number = message_id, DEFAULT_NHS_NUMBER
    if payload is not None:
        hl7_id = payload.find(f"{{{NS_HL7}}}id")
        request_id = (hl7_id.get("root") if hl7_id is not None else None) or message_id
        for element in payload.iter():
            extension = element.get("extension") if element.get("root") == NHS_NUMBER_ROOT else None
            if extension and extension.isdigit() and len(extension) == 10:
                nhs_number = extension
                break
    return Asked(request_id, nhs_number, interaction_id)


def asked_of(payload: str | None, *, message_id: str, interaction_id: str) -> Asked:
    """``asked`` for an HL7 payload as text; one that cannot be read names nothing."""
    element = None
    if payload:
        try:
            element = hl7_element(payload, "the request's HL7 payload")
        except EbxmlError:
            element = None
    return asked(element, message_id=message_id, interaction_id=interaction_id)


@cache
def _template(name: str) -> Template | None:
    path = _TEMPLATES / f"{name}.xml"
    return Template(path.read_text()) if path.exists() else None


def answer_payload(
    action: str, request: Asked, *, message_id: str, spine_asid: str, receiver_asid: str
) -> str:
    """Spine's HL7 answer ``action`` to ``request``, from Spine to ``receiver_asid``."""
    created = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    values = {
        "interaction": action,
        "message_id": message_id,
        "created": created,
        "request_id": request.request_id,
        "nhs_number": request.nhs_number,
        "spine_asid": spine_asid,
        "receiver_asid": receiver_asid,
        "list_id": new_id(),
        "document_id": new_id(),
        "detail_code": "0",
        # The template puts it inside an attribute's quotes.
        "detail_text": quoteattr(ACK_DETAILS.get(request.interaction_id, DEFAULT_ACK_DETAIL))[1:-1],
    }
    detail = _template(f"{action}.detail")
    # An answer with a detail of its own (an application acknowledgement) says no more;
    # any other without a template of its own is a plain successful query acknowledgement.
    content = _template(action) or (None if detail else _template("query-ok"))
    wrapper = _template("reply")
    assert wrapper is not None  # reply.xml ships with the package
    return wrapper.substitute(
        values,
        detail=detail.substitute(values) if detail else "",
        content=content.substitute(values) if content else "",
    )
