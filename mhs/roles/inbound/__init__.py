"""The inbound MHS: receives ebXML from Spine, acknowledges, drops duplicates, and puts
each message on its recipient instance's queue."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from mhs.broker import Broker, BrokerError, OutgoingMessage, PublishUncertain
from mhs.directory import Directory, Mhs, Party
from mhs.ebxml import (
    ACTION_ACKNOWLEDGMENT,
    ACTION_MESSAGE_ERROR,
    EbxmlError,
    EbxmlMessage,
    ErrorDetail,
    MessageHeader,
    build_acknowledgment,
    build_message_error,
    extract_device_asids,
    parse_message,
    timestamp_now,
)
from mhs.ids import is_asid, is_uuid, new_id
from mhs.messages.instance import POSSIBLE_DUPLICATE, instance_message
from mhs.observe.events import Event
from mhs.observe.logs import get_logger
from mhs.roles.common import (
    BROKER,
    DIRECTORY,
    LOG,
    READINESS,
    SETTINGS,
    create_role_app,
    opened_state_store,
    text_error,
)
from mhs.roles.http.client_certs import only_from_spine_proxy, text_refusal
from mhs.roles.http.limits import TooLarge, read_capped
from mhs.roles.inbound.replies import publish_to_waiter, waiting_queue
from mhs.settings import Settings
from mhs.state import StateError
from mhs.state.dedup import DuplicateElimination, First, Seen

ROLE = "inbound"
SERVED = web.AppKey("served", Mhs)
DEDUP = web.AppKey("dedup", DuplicateElimination)
DEFAULT_PERSIST = timedelta(minutes=5)
INVALID_TO_PARTY = "501314:Invalid To Party Type attribute"


def create_inbound_app(
    settings: Settings,
    directory: Directory,
    *,
    broker: Broker | None = None,
    mhs_name: str | None = None,
) -> web.Application:
    """The inbound MHS for ``mhs_name`` (default: settings.local_mhs, else the hosted MHS)."""
    name = mhs_name or settings.local_mhs
    served = directory.mhs(name) if name else directory.hosted_mhs
    if served is None:
        raise ValueError(f"MHS {name!r} is not in the topology {directory.source}")
    log = get_logger(ROLE).bind(mhs=served.name)
    app = create_role_app(ROLE, settings, directory, broker, log)
    app[SERVED] = served
    app.cleanup_ctx.append(_dedup_ctx)
    only_from_spine_proxy(app, text_refusal(Event.INBOUND_REFUSED))
    app.router.add_post("/{tail:.*}", receive)
    return app


async def _dedup_ctx(app: web.Application) -> AsyncIterator[None]:
    async with opened_state_store(app) as store:
        ttl_s = app[SETTINGS].dedup_pending_ttl_s
        dedup = app[DEDUP] = DuplicateElimination(store, pending_ttl_s=ttl_s)
        app[READINESS].append(lambda: None if store.available else "state store not answering")
        yield
        left = await dedup.drain(within_s=app[SETTINGS].shutdown_timeout_s)
        if left:
            reason = f"{left} settlements were not written before the stop deadline"
            app[LOG].warning(Event.INBOUND_CLAIM_NOT_SETTLED, reason=reason)


def _nack(message: EbxmlMessage, description: str) -> web.Response:
    body = build_message_error(
        message.header,
        [ErrorDetail("ebxml", "ValueNotRecognized", "Error", description)],
        message_id=new_id(),
        timestamp=timestamp_now(),
    )
    return web.Response(status=200, body=body, content_type="text/xml")


def _acknowledgment(message: EbxmlMessage) -> bytes:
    """The Acknowledgment to answer: for every message, express ones too, whatever its
    AckRequested says, as the NHS adaptor's inbound MHS and SpineTools answer."""
    return build_acknowledgment(message.header, message_id=new_id(), timestamp=timestamp_now())


def _acknowledge(acknowledgment: bytes) -> web.Response:
    # An Acknowledgment stored before every message was acknowledged may be empty.
    if not acknowledgment:
        return web.Response(status=202)
    return web.Response(status=200, body=acknowledgment, content_type="text/xml")


def _retry_later(text: str) -> web.Response:
    return text_error(503, text, **{"Retry-After": "1"})


def _recipient(
    request: web.Request, message: EbxmlMessage, served: Mhs, directory: Directory
) -> Party | str:
    """The hosted instance the message is for, or the NACK description if there is none."""
    to_party = message.header.to_party_id
    parties = [p for p in directory.by_party_key(to_party) if p.mhs == served.name]
    if not parties:
        return INVALID_TO_PARTY
    if len(parties) == 1:
        return parties[0]
    # A shared party key: the recipient ASID travels in Ssp-To, or in the HL7 wrapper.
    asid = request.headers.get("Ssp-To")
    if not asid and message.payload:
        _, asid = extract_device_asids(message.payload)
    if not asid or not is_asid(asid):
        return f"recipient ASID not given for shared party key {to_party}"
    for party in parties:
        if party.asid == asid:
            return party
    return f"ASID {asid} is not hosted under party key {to_party}"


def _checked(message: EbxmlMessage) -> EbxmlMessage:
    # Duplicate elimination keys on the MessageId: only a UUID (as Spine writes them) will do.
    if not is_uuid(message.header.message_id):
        raise EbxmlError(f"eb:MessageId {message.header.message_id[:64]!r} is not a UUID")
    return message


async def _read(request: web.Request) -> EbxmlMessage | web.Response:
    """The request's ebXML message, or the refusal to answer with."""
    log = request.app[LOG]
    content_type = request.headers.get("Content-Type", "")
    if request.content_type != "multipart/related":
        log.info(Event.INBOUND_REFUSED, status=415, reason=f"content type {content_type!r}")
        return text_error(415, f"Content-Type must be multipart/related, got {content_type!r}")
    try:
        return _checked(parse_message(content_type, await read_capped(request)))
    except TooLarge as error:
        log.info(Event.INBOUND_REFUSED, status=413, reason=str(error))
        return text_error(413, f"{error} (MHS_MAX_REQUEST_BYTES)")
    except EbxmlError as error:
        log.info(Event.INBOUND_REFUSED, status=400, reason=str(error))
        return text_error(400, f"Malformed ebXML message: {error}")


def _log_fields(header: MessageHeader) -> dict[str, str | None]:
    return {
        "message_id": header.ref_to_message_id or header.message_id,
        "inbound_message_id": header.message_id,
        "correlation_id": header.conversation_id,
        "interaction_id": header.action,
        "from_party_key": header.from_party_id,
        "to_party_key": header.to_party_id,
    }


def _for_instance(
    request: web.Request,
    message: EbxmlMessage,
    recipient: Party,
    from_asid: str | None,
    possible_duplicate: bool,
) -> OutgoingMessage:
    """What goes on the recipient instance's queue: the NHS adaptor's JSON, our headers
    (``mhs-possible-duplicate`` only on a copy an earlier, unconfirmed publish may repeat)."""
    header = message.header
    sender = request.app[DIRECTORY].by_asid(from_asid) if from_asid else None
    return instance_message(
        ebxml=message.ebxml,
        payload=message.payload,
        attachments=message.attachments,
        message_id=header.ref_to_message_id or header.message_id,
        correlation_id=header.conversation_id,
        interaction_id=header.action,
        from_asid=from_asid,
        to_asid=recipient.asid,
        from_party_key=header.from_party_id,
        to_party_key=header.to_party_id,
        ods_code=recipient.ods_code,
        extra={
            "inbound-message-id": header.message_id,
            "ref-to-message-id": header.ref_to_message_id,
            "from-ods-code": sender.ods_code if sender else None,
            "mhs-attempt": _int_header(request.headers.get("Mhs-Attempt")),
            POSSIBLE_DUPLICATE: True if possible_duplicate else None,
        },
    )


async def receive(request: web.Request) -> web.Response:
    """Receive one ebXML message from Spine."""
    app = request.app
    log = app[LOG]
    message = await _read(request)
    if isinstance(message, web.Response):
        return message
    header = message.header
    fields = _log_fields(header)
    if header.action in (ACTION_ACKNOWLEDGMENT, ACTION_MESSAGE_ERROR):
        log.info(Event.INBOUND_SIGNAL_RECEIVED, **fields)
        return web.Response(status=200)
    try:
        recipient = _recipient(request, message, app[SERVED], app[DIRECTORY])
    except EbxmlError as error:
        recipient = f"payload is not well-formed XML: {error}"
    if isinstance(recipient, str):
        log.info(Event.INBOUND_NACKED, reason=recipient, outcome="nacked", **fields)
        return _nack(message, recipient)
    from_asid = request.headers.get("Ssp-From")
    fields.update(to_asid=recipient.asid, to_ods=recipient.ods_code, from_asid=from_asid)
    log.debug(Event.INBOUND_RECEIVED, **fields)
    interaction = app[DIRECTORY].interaction(header.action)
    keep = interaction.reliability.persist_duration if interaction else DEFAULT_PERSIST
    claim = await _claim(app, message, fields) if header.duplicate_elimination else None
    if isinstance(claim, web.Response):
        return claim
    flagged = await _possible_duplicate(app, header.message_id, claim)
    acknowledgment = _acknowledgment(message)
    started = time.perf_counter()
    outgoing = _for_instance(request, message, recipient, from_asid, flagged)
    waiter = None
    if header.ref_to_message_id:
        # A reply: to the outbound replica holding its request, if one is (wait-for-response).
        waiter = await waiting_queue(app[DEDUP].store, log, header.ref_to_message_id, fields)
    # Once claimed, publishing and settling finish even if this request is cancelled (a
    # stop): a message published but never settled could be delivered again later.
    problem, queue = await asyncio.shield(
        _publish(
            app,
            app[SETTINGS].inbound_queue(recipient.asid),
            outgoing,
            claim=claim,
            keep=keep,
            ack=acknowledgment,
            fields=fields,
            waiter=waiter,
        )
    )
    if problem is not None:
        log.warning(Event.INBOUND_REFUSED, status=500, reason=problem, **fields)
        return text_error(500, "message could not be queued; send it again")
    if flagged:
        log.info(Event.INBOUND_POSSIBLE_DUPLICATE, queue=queue, **fields)
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    log.info(
        Event.INBOUND_DELIVERED, queue=queue, outcome="delivered", duration_ms=duration_ms, **fields
    )
    log.debug(Event.INBOUND_ACKNOWLEDGED, outcome="acknowledged", **fields)
    return _acknowledge(acknowledgment)


async def _publish(
    app: web.Application,
    queue: str,
    outgoing: OutgoingMessage,
    *,
    claim: First | None,
    keep: timedelta,
    ack: bytes,
    fields: dict[str, str | None],
    waiter: str | None = None,
) -> tuple[str | None, str]:
    """Publish to the waiting replica's reply queue (``waiter``) or else the instance's
    queue, and settle the claim; what went wrong, if anything, and the queue used."""
    broker = app[BROKER]
    try:
        if waiter is not None and await publish_to_waiter(
            broker, app[LOG], waiter, outgoing, fields
        ):
            queue = waiter
        else:
            await broker.declare_queue(queue)
            await broker.publish(queue, outgoing)
    except PublishUncertain as error:
        await _unconfirmed(app, claim, keep, str(error), fields)
        return str(error), queue
    except BrokerError as error:
        if claim is not None:
            # If the store does not answer either, the claim expires with its pending TTL.
            with contextlib.suppress(StateError):
                await app[DEDUP].failed(claim)
        return str(error), queue
    if claim is not None:
        _settle(app, claim, keep, ack, fields)
    return None, queue


async def _possible_duplicate(app: web.Application, message_id: str, claim: First | None) -> bool:
    """Whether an earlier publish of ``message_id`` may have landed: the claim says so, or
    for a message without duplicate elimination the store (True if it cannot say)."""
    if claim is not None:
        return claim.possible_duplicate
    return await app[DEDUP].possible_duplicate(message_id)


async def _unconfirmed(
    app: web.Application,
    claim: First | None,
    keep: timedelta,
    reason: str,
    fields: dict[str, str | None],
) -> None:
    """The broker may have queued the message: never treat it as lost. Mark its id so
    every later copy goes out flagged, then give the claim up so the sender's retry (the
    500 answered) is delivered, in case this copy did not land."""
    message_id = str(fields["inbound_message_id"])
    try:
        await app[DEDUP].uncertain(message_id, claim, keep_s=keep.total_seconds())
        marked = True
    except StateError:
        # Nothing marked: the claim expires with its pending TTL, and a later copy is
        # delivered unflagged (docs/reliability.md says so).
        marked = False
    app[LOG].warning(
        Event.INBOUND_PUBLISH_UNCONFIRMED,
        reason=reason,
        marked=marked,
        **fields,
    )


async def _claim(
    app: web.Application, message: EbxmlMessage, fields: dict[str, str | None]
) -> First | web.Response:
    """Claim the message id for this copy, or the answer for a copy not to deliver."""
    log = app[LOG]
    try:
        found = await app[DEDUP].check(message.header.message_id)
    except StateError as error:
        log.warning(Event.INBOUND_REFUSED, status=503, reason=str(error), **fields)
        return _retry_later("duplicate elimination is not available; send it again later")
    if isinstance(found, Seen):
        log.info(Event.INBOUND_DUPLICATE, outcome="duplicate", **fields)
        return _acknowledge(found.acknowledgment)
    if not isinstance(found, First):
        log.info(Event.INBOUND_DUPLICATE_IN_PROGRESS, status=503, outcome="retry-later", **fields)
        return _retry_later("a copy of this message is being delivered; send it again later")
    return found


def _settle(
    app: web.Application,
    claim: First,
    keep: timedelta,
    acknowledgment: bytes,
    fields: dict[str, str | None],
) -> None:
    """Record the delivered message as done, written behind the answer. It is on its
    queue whatever the store says, so a store failure is logged, not answered as an
    error: an error would make the sender send a copy that, once the pending claim
    expired, would be delivered again."""

    def not_settled(reason: str) -> None:
        app[LOG].warning(Event.INBOUND_CLAIM_NOT_SETTLED, reason=reason, **fields)

    app[DEDUP].settle_behind(
        claim, keep_s=keep.total_seconds(), acknowledgment=acknowledgment, not_settled=not_settled
    )


def _int_header(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
