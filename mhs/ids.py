"""Identifier formats: ASIDs, message ids and the like."""

from __future__ import annotations

import re
import uuid

# The FHIR identifier system of ODS organisation codes (JWTs, SDS queries, audit records).
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
# ASCII only: str patterns match any Unicode digit with \d, and an ASID is 0-9.
ASID_RE = re.compile(r"[0-9]{12}")
UUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def is_asid(value: str) -> bool:
    return ASID_RE.fullmatch(value) is not None


def is_uuid(value: str) -> bool:
    return UUID_RE.fullmatch(value) is not None


def new_id() -> str:
    """An upper-case UUID4, as Spine writes message and conversation ids."""
    return str(uuid.uuid4()).upper()


# Where a caller's own ids are mapped from (any fixed UUID would do; this one never changes).
_CALLER_IDS = uuid.UUID("6c2f0d5e-3b7a-4e1f-9a44-0b6f2c8d7e15")


def wire_id(given: str, scope: str) -> str:
    """The id ``given`` by a caller travels as in ebXML, which needs a UUID: ``given`` in
    upper case when it is a UUID, else a UUID derived from ``scope`` (the sender's ASID) and
    ``given``: the same every time, so a message sent again is still the same message, and
    two senders' ``"1"`` are two messages."""
    if is_uuid(given):
        return given.upper()
    return str(uuid.uuid5(_CALLER_IDS, f"{scope}:{given}")).upper()
