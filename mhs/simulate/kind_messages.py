"""Messaging per consumer kind: every consumer system asks Spine's PDS synchronously
(``QUPA_IN040000UK32``, the ``sync`` pattern) through the outbound MHS as its own instance.

Spine answers in the same exchange, so each answer reaches the very system that asked (one
of a TIE's systems, a portal's organisation) and names it as the receiving device: counted
as ``answered_to_sender``. No consumer endpoint is needed, so the kinds' illustrative
endpoints never are.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import orjson

from mhs.directory import Directory, Party
from mhs.ebxml import EbxmlError, extract_device_asids
from mhs.ebxml.model import ASID_ROOT
from mhs.simulate.kind_plan import consumers

PDS_QUERY = "QUPA_IN040000UK32"
PDS_ANSWER = "QUPA_IN050000UK32"
# A test NHS number (valid check digit, never issued).
NHS_NUMBER = "9000000009"


def _query(sender: Party, spine_asid: str, message_id: str) -> bytes:
    payload = (
        f'<{PDS_QUERY} xmlns="urn:hl7-org:v3"><id root="{message_id}"/>'
        f'<communicationFunctionRcv><device><id root="{ASID_ROOT}" extension="{spine_asid}"/>'
        "</device></communicationFunctionRcv>"
        f'<communicationFunctionSnd><device><id root="{ASID_ROOT}" extension="{sender.asid}"/>'
        "</device></communicationFunctionSnd>"
        '<ControlActEvent><query><person.id><value root="2.16.840.1.113883.2.1.4.1" '
        f'extension="{NHS_NUMBER}"/></person.id></query></ControlActEvent></{PDS_QUERY}>'
    )
    return orjson.dumps({"payload": payload})


async def _ask(
    session: aiohttp.ClientSession, outbound: str, directory: Directory, sender: Party
) -> tuple[bool, bool]:
    """(answered, answered to the sender) for one PDS query from ``sender``."""
    spine = directory.spine
    headers = {
        "Authorization": f"Bearer {directory.credential_for(sender.asid) or ''}",
        "Interaction-Id": PDS_QUERY,
        "wait-for-response": "false",
        "from-asid": sender.asid,
        "Content-Type": "application/json",
    }
    body = _query(sender, spine.asid if spine else "", "PDS-" + sender.asid)
    async with session.post(outbound + "/", data=body, headers=headers) as response:
        text = await response.text()
    if response.status != 200 or PDS_ANSWER not in text[:200]:
        return False, False
    try:
        _, receiver = extract_device_asids(text)
    except EbxmlError:
        return True, False
    return True, receiver == sender.asid


async def pds_queries(
    session: aiohttp.ClientSession, outbound: str, directory: Directory, kinds: tuple[str, ...]
) -> dict[str, dict[str, int]]:
    """Per kind: PDS queries sent, answered, and answered to the system that asked."""
    counts: dict[str, Counter[str]] = {}
    asked = [(kind, sender) for kind in kinds for sender in consumers(directory, kind)]
    results = await asyncio.gather(
        *(_ask(session, outbound, directory, sender) for _, sender in asked)
    )
    for (kind, _), (answered, to_sender) in zip(asked, results, strict=True):
        count = counts.setdefault(kind, Counter())
        count["sent"] += 1
        count["answered"] += answered
        count["answered_to_sender"] += to_sender
    return {
        kind: {k: c[k] for k in ("sent", "answered", "answered_to_sender")}
        for kind, c in counts.items()
    }
