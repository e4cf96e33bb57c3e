"""The ``sync`` pattern: a request Spine answers in the same HTTP exchange (a PDS query).

Nothing is queued: as the NHS adaptor does, the outbound MHS sends the SOAP request to the
Spine proxy at once and answers the caller with the HL7 of Spine's answer (200,
text/xml). Spine's SOAP fault is the adaptor's 500 with its error JSON; any other answer
that is not 200 is passed on as it came (Spine's status and body); one that cannot be
read, or a proxy that cannot be reached, is a 500 saying so.
"""

from __future__ import annotations

import time

import aiohttp
from aiohttp import web

from mhs.directory import Interaction
from mhs.ebxml import EbxmlError, classify_reply
from mhs.ebxml.soap import SyncMessage, build_sync, hl7_element, hl7_text, read_sync
from mhs.ids import new_id
from mhs.messages.records import OutboundRecord
from mhs.observe.events import Event
from mhs.reliability.errors import error_items
from mhs.roles.common import LOG, SETTINGS, text_error
from mhs.roles.outbound.acceptance import spine_errors
from mhs.roles.outbound.gpconnect import PROXY_SESSION
from mhs.spine.requests import SPINE_PATHS, spine_headers


def _request(record: OutboundRecord, interaction: Interaction) -> tuple[bytes, dict[str, str]]:
    action = f"{interaction.service}/{record.interaction_id}"
    message = SyncMessage(
        message_id=record.message_id,
        action=action,
        from_asid=record.from_asid,
        to_asid=record.to_asid,
        payload=hl7_element(record.payload, "the HL7 payload"),
    )
    headers = spine_headers(
        content_type="text/xml; charset=utf-8",
        soap_action=action,
        from_asid=record.from_asid,
        to_asid=record.to_asid,
        interaction_id=record.interaction_id,
        message_id=record.message_id,
        correlation_id=record.correlation_id,
    )
    headers["Ssp-TraceID"] = new_id()
    return build_sync(message, to=interaction.service), headers


async def send_sync(
    request: web.Request, record: OutboundRecord, interaction: Interaction, fields: dict[str, str]
) -> web.Response:
    """Send ``record`` to Spine synchronously and answer with what Spine answered."""
    app = request.app
    url = app[SETTINGS].proxy_url + SPINE_PATHS["sync"]
    body, headers = _request(record, interaction)
    ids = record.caller_ids
    started = time.perf_counter()
    try:
        async with app[PROXY_SESSION].post(url, data=body, headers=headers) as response:
            status, answer = response.status, await response.read()
            content_type = response.headers.get("Content-Type", "text/plain")
    except (TimeoutError, aiohttp.ClientError) as error:
        why = "no answer in time" if isinstance(error, TimeoutError) else str(error)
        return _failed(app, 500, f"Error making outbound request to {url}: {why}", fields, ids)
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    if status != 200:
        app[LOG].info(
            Event.MESSAGE_REFUSED, status=status, reason=f"Spine answered HTTP {status}", **fields
        )
        refusal = classify_reply(content_type, answer)
        if status == 500 and refusal.errors:
            # As the adaptor: Spine's SOAP fault becomes its error JSON.
            return spine_errors(error_items(refusal.errors, outcome="rejected", reason=""), ids)
        return web.Response(
            status=status, body=answer, headers={"Content-Type": content_type, **ids}
        )
    try:
        hl7 = hl7_text(read_sync(answer, "Spine's synchronous answer").payload)
    except EbxmlError as error:
        return _failed(app, 500, str(error), fields, ids)
    app[LOG].info(
        Event.MESSAGE_REPLIED, status=200, outcome="replied", duration_ms=duration_ms, **fields
    )
    return web.Response(status=200, text=hl7, content_type="text/xml", headers=ids)


def _failed(
    app: web.Application, status: int, reason: str, fields: dict[str, str], ids: dict[str, str]
) -> web.Response:
    app[LOG].warning(Event.MESSAGE_REFUSED, status=status, reason=reason, **fields)
    return text_error(status, reason, **ids)
