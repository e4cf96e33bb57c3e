"""The outbound MHS: the NHS adaptor's ``POST /`` for many hosted instances at once.

Each request is authenticated as one hosted instance, whose ASID and party key are
stamped on the message; the answer is 202 once the message is confirmed on the queue, or
with ``wait-for-response: true`` the reply's payload once it arrives (replies), or in spine
acceptance once the delivery worker has settled it (acceptance).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from mhs.broker import Broker, BrokerError, PublishUncertain
from mhs.directory import Directory, Interaction, Party
from mhs.ebxml import EbxmlError, extract_device_asids
from mhs.ids import is_asid, new_id, wire_id
from mhs.messages.outbound import outbound_message
from mhs.messages.queues import declare_outbound
from mhs.messages.records import OutboundRecord
from mhs.observe.events import Event
from mhs.observe.logs import get_logger
from mhs.roles.common import BROKER, DIRECTORY, LOG, SETTINGS, create_role_app, text_error
from mhs.roles.outbound.acceptance import acceptance_of, hold_for_outcome
from mhs.roles.outbound.auth import Refused, authenticate
from mhs.roles.outbound.body import read_body
from mhs.roles.outbound.gpconnect import install_gpconnect
from mhs.roles.outbound.replies import hold_for_reply, install_replies
from mhs.roles.outbound.status import STATE, install_status
from mhs.roles.outbound.sync import send_sync
from mhs.settings import Settings
from mhs.state import StateError
from mhs.state.dedup import mark_uncertain

ROLE = "outbound"


def create_outbound_app(
    settings: Settings, directory: Directory, *, broker: Broker | None = None
) -> web.Application:
    """The outbound MHS application."""
    app = create_role_app(ROLE, settings, directory, broker, get_logger(ROLE))
    app.cleanup_ctx.append(_declare_queues)
    app.router.add_post("/", post_message)
    install_gpconnect(app)
    install_status(app)
    install_replies(app)
    return app


async def _declare_queues(app: web.Application) -> AsyncIterator[None]:
    await declare_outbound(app[BROKER], app[SETTINGS])
    yield


# Longer ids are refused rather than carried through every log line and header.
MAX_ID_CHARS = 1000


def _id(request: web.Request, header: str, sender: Party) -> tuple[str, str | None]:
    """The id ``header`` names: the UUID it travels as, and the caller's own (any string, as
    the NHS adaptor takes it; kept exactly, for echoing) where that differs."""
    given = request.headers.get(header) or None
    if given is not None and len(given) > MAX_ID_CHARS:
        raise Refused(400, f"{header} header is over {MAX_ID_CHARS} characters")
    wire = new_id() if given is None else wire_id(given, sender.asid)
    return wire, given if given != wire else None


def _recipient(
    request: web.Request, directory: Directory, interaction_id: str, spine_ods: str
) -> Party:
    ods_code = request.headers.get("ods-code", "").strip()
    to_asid = request.headers.get("to-asid", "").strip()
    if to_asid:
        if not is_asid(to_asid):
            raise Refused(400, f"to-asid header must be a 12-digit ASID, got {to_asid!r}")
        party = directory.by_asid(to_asid)
        if party is None:
            raise Refused(400, f"to-asid {to_asid} is not a registered ASID")
        if ods_code and ods_code != party.ods_code:
            raise Refused(400, f"to-asid {to_asid} belongs to {party.ods_code}, not {ods_code}")
        return party
    if not ods_code:
        # As the NHS adaptor: no ods-code means Spine (MHS_SPINE_ORG_CODE), for its own
        # services. Anything else needs the recipient named.
        spine = directory.recipient(spine_ods, interaction_id)
        if spine is None or not spine.accredited_for(interaction_id):
            raise Refused(
                400,
                f"ods-code header (the recipient's ODS code) required: without it the "
                f"recipient is Spine ({spine_ods}), which does not receive {interaction_id}",
            )
        return spine
    recipient = directory.recipient(ods_code, interaction_id)
    if recipient is None:
        raise Refused(400, f"ods-code {ods_code!r} is not a registered organisation")
    return recipient


async def post_message(request: web.Request) -> web.Response:
    """Accept one message from a hosted instance and queue it for delivery (and, with
    ``wait-for-response: true``, hold the request until the reply arrives)."""
    app = request.app
    log = app[LOG]
    try:
        record, interaction, wait = await _accept(request)
        acceptance = acceptance_of(request)
    except Refused as refused:
        log.info(
            Event.MESSAGE_REFUSED,
            status=refused.status,
            reason=refused.text,
            interaction_id=request.headers.get("Interaction-Id"),
        )
        # As the adaptor: the caller's Correlation-Id comes back on an error too.
        echoed = {"Correlation-Id": c} if (c := request.headers.get("Correlation-Id")) else {}
        return text_error(refused.status, refused.text, **{**echoed, **refused.headers})
    fields = record.log_fields()
    log.debug(Event.MESSAGE_ACCEPTED, **fields)
    if interaction.pattern == "sync":
        return await send_sync(request, record, interaction, fields)
    if acceptance == "spine":
        return await hold_for_outcome(
            request, record, fields, lambda to: _queue(app, record, fields, reply_to=to), reply=wait
        )
    if wait:
        return await hold_for_reply(request, record, fields, lambda: _queue(app, record, fields))
    not_queued = await _queue(app, record, fields)
    if not_queued is not None:
        return not_queued
    return web.Response(
        status=202,
        headers=record.caller_ids,
    )


async def _queue(
    app: web.Application,
    record: OutboundRecord,
    fields: dict[str, str],
    *,
    reply_to: str | None = None,
) -> web.Response | None:
    """Publish the accepted message, confirmed; the 503 to answer if the broker failed.
    ``reply_to``: the reply queue the worker tells the delivery's outcome (spine acceptance)."""
    log = app[LOG]
    started = time.perf_counter()
    settings = app[SETTINGS]
    try:
        await app[BROKER].publish(
            settings.outbound_queue,
            outbound_message(record, app_id="mhs-outbound", reply_to=reply_to),
        )
    except PublishUncertain as error:
        # It may be queued: say so, and mark the id so an inbound MHS on our state store
        # flags what it delivers of it. The caller sends it again with the same Message-Id.
        marked = await _mark_uncertain(app, record)
        log.warning(
            Event.MESSAGE_PUBLISH_UNCONFIRMED,
            status=503,
            reason=str(error),
            marked=marked,
            **fields,
        )
        return text_error(
            503,
            "the queue did not confirm the message, which may have been queued: send it"
            f" again with the same Message-Id: {error}",
        )
    except BrokerError as error:
        log.warning(Event.MESSAGE_REFUSED, status=503, reason=str(error), **fields)
        return text_error(503, f"message could not be queued, nothing was accepted: {error}")
    log.info(
        Event.MESSAGE_QUEUED,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        outcome="queued",
        **fields,
    )
    return None


async def _mark_uncertain(app: web.Application, record: OutboundRecord) -> bool:
    interaction = app[DIRECTORY].interaction(record.interaction_id)
    assert interaction is not None  # _accept refuses an interaction the directory lacks
    keep = interaction.reliability.persist_duration
    try:
        await mark_uncertain(app[STATE], record.message_id, keep_s=keep.total_seconds())
    except StateError:
        return False
    return True


async def _accept(request: web.Request) -> tuple[OutboundRecord, Interaction, bool]:
    """The stamped record of a valid request, its interaction, and whether to hold it for
    the reply."""
    directory = request.app[DIRECTORY]
    sender = authenticate(request, directory)
    interaction_id = request.headers.get("Interaction-Id", "").strip()
    if not interaction_id:
        raise Refused(404, "Interaction-Id header required")
    interaction = directory.interaction(interaction_id)
    if interaction is None:
        raise Refused(404, f"Unknown interaction ID: {interaction_id}")
    wait = request.headers.get("wait-for-response")
    if wait is None or wait.lower() not in ("true", "false"):
        raise Refused(400, "wait-for-response header must be 'true' or 'false'")
    hold = wait.lower() == "true"
    if hold and not interaction.sync_async:
        raise Refused(400, f"wait-for-response: true is not supported for {interaction_id}")
    from_asid = request.headers.get("from-asid")
    if from_asid is not None and from_asid.strip() != sender.asid:
        raise Refused(403, f"from-asid {from_asid.strip()!r} is not the ASID of this credential")
    message_id, given_message_id = _id(request, "Message-Id", sender)
    correlation_id, given_correlation_id = _id(request, "Correlation-Id", sender)
    recipient = _recipient(request, directory, interaction_id, request.app[SETTINGS].spine_org_code)
    body = await read_body(request)
    _check_payload_asids(request, body.payload, sender, recipient, interaction_id)
    record = OutboundRecord.stamped(
        sender,
        recipient,
        message_id=message_id,
        correlation_id=correlation_id,
        given_message_id=given_message_id,
        given_correlation_id=given_correlation_id,
        interaction_id=interaction_id,
        payload=body.payload,
        attachments=body.attachments,
        external_attachments=body.external_attachments,
    )
    return record, interaction, hold


def _check_payload_asids(
    request: web.Request, payload: str, sender: Party, recipient: Party, interaction_id: str
) -> None:
    """The HL7 sender must be the credential's own system; a foreign HL7 receiver is a
    warning, or with MHS_HL7_RECEIVER_CHECK=strict a refusal."""
    try:
        payload_from, payload_to = extract_device_asids(payload)
    except EbxmlError as error:
        raise Refused(400, f"payload is not well-formed XML: {error}") from None
    if payload_from is not None and payload_from != sender.asid:
        raise Refused(
            403, f"payload communicationFunctionSnd ASID {payload_from} is not this sender's"
        )
    if payload_to is None or payload_to == recipient.asid:
        return
    mismatch = (
        f"payload communicationFunctionRcv ASID {payload_to} is not the recipient "
        f"{recipient.asid} of ods-code {recipient.ods_code}"
    )
    if request.app[SETTINGS].hl7_receiver_check == "strict":
        raise Refused(400, mismatch)
    request.app[LOG].warning(
        Event.MESSAGE_RECEIVER_MISMATCH,
        reason=mismatch,
        payload_receiver_asid=payload_to,
        interaction_id=interaction_id,
        from_asid=sender.asid,
        to_asid=recipient.asid,
    )
