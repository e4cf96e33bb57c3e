"""Spine's synchronous services at the proxy: one SOAP request, checked as the SSP checks
any other, answered in the same HTTP response with Spine's HL7 (mhs.spine.responders).

Fault rules apply as to any message; a fault that answers for Spine (a SOAP fault, an
HTTP status) is what the caller gets instead of the answer.
"""

from __future__ import annotations

from aiohttp import web

from mhs.directory import Interaction, Party
from mhs.ebxml import EbxmlError, MessageHeader, timestamp_now
from mhs.ebxml.soap import SyncMessage, build_sync, hl7_element, read_sync
from mhs.ids import new_id
from mhs.observe.events import Event
from mhs.roles.common import DIRECTORY, LOG
from mhs.roles.http.limits import TooLarge, read_capped
from mhs.roles.spine_proxy.checking import check, message_fields, refuse, ssp_request
from mhs.roles.spine_proxy.faults import apply_faults
from mhs.spine.requests import SPINE_PATHS
from mhs.spine.responders import answer_payload, asked
from mhs.ssp import Refusal

# What Spine answers a sync interaction with when the catalogue names no answer of its own.
DEFAULT_ANSWER = "MCCI_IN010000UK13"


def add_sync_route(app: web.Application) -> None:
    """Answer Spine's synchronous services (before the catch-all ebXML route)."""
    app.router.add_post(SPINE_PATHS["sync"], answer_sync)


async def answer_sync(request: web.Request) -> web.Response:
    """Check one synchronous request as the SSP would, then answer it as Spine."""
    ssp = ssp_request(request)
    fields = message_fields(request, ssp)
    refusal = check(request, ssp)
    if refusal is not None:
        return refuse(request, refusal, fields)
    directory = request.app[DIRECTORY]
    spine, sender = directory.by_asid(ssp.to_asid or ""), directory.by_asid(ssp.from_asid or "")
    interaction = directory.interaction(ssp.interaction_id or "")
    # The checks passed: both are registered.
    assert spine is not None
    assert sender is not None
    try:
        message = read_sync(await read_capped(request), "the SOAP request")
    except TooLarge as error:
        return refuse(request, Refusal.too_large(error.limit), fields)
    except EbxmlError as error:
        return refuse(request, Refusal.bad_request(f"not a SOAP request: {error}"), fields)
    fields["message_id"] = message.message_id
    problem = _mismatch(message, ssp.interaction_id, spine, interaction)
    if problem is not None or interaction is None:
        return refuse(request, Refusal.bad_request(problem or "unknown interaction"), fields)
    header = _as_header(message, interaction, spine, sender)
    return await apply_faults(
        request,
        header,
        fields,
        lambda: _answer(request, message, interaction, (spine, sender), fields),
    )


def _mismatch(
    message: SyncMessage, ssp_interaction: str | None, spine: Party, interaction: Interaction | None
) -> str | None:
    if message.interaction_id != ssp_interaction:
        return f"wsa:Action {message.action} does not match Ssp-InteractionID {ssp_interaction}"
    if not spine.spine:
        return f"a synchronous request is answered by Spine only, not by Ssp-To {spine.asid}"
    if interaction is None or interaction.pattern != "sync":
        return f"{ssp_interaction} is not a synchronous interaction"
    return None


def _as_header(
    message: SyncMessage, interaction: Interaction, spine: Party, sender: Party
) -> MessageHeader:
    # Fault rules are written for ebXML; a synchronous request stands in as one.
    return MessageHeader(
        from_party_id=sender.party_key,
        to_party_id=spine.party_key,
        cpa_id=spine.cpa_id,
        conversation_id=message.message_id,
        service=interaction.service,
        action=message.interaction_id,
        message_id=message.message_id,
        timestamp=timestamp_now(),
    )


async def _answer(
    request: web.Request,
    message: SyncMessage,
    interaction: Interaction,
    parties: tuple[Party, Party],
    fields: dict[str, str | None],
) -> web.Response:
    spine, sender = parties
    action = interaction.reply or DEFAULT_ANSWER
    answer_id = new_id()
    request_id, interaction_id = message.message_id, message.interaction_id
    payload = answer_payload(
        action,
        asked(message.payload, message_id=request_id, interaction_id=interaction_id),
        message_id=answer_id,
        spine_asid=spine.asid,
        receiver_asid=sender.asid,
    )
    answer = SyncMessage(
        message_id=answer_id,
        action=f"{interaction.service}/{action}",
        from_asid=spine.asid,
        to_asid=sender.asid,
        payload=hl7_element(payload, "Spine's answer"),
        relates_to=message.message_id,
    )
    request.app[LOG].info(
        Event.PROXY_ANSWERED_AS_SPINE,
        status=200,
        outcome="answered",
        reply_message_id=answer_id,
        **fields,
    )
    return web.Response(body=build_sync(answer, to=""), content_type="text/xml")
