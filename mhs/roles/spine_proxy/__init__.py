"""The Spine proxy simulator: the SSP's checks, injected faults, and forwarding to inbound
(or, for a message addressed to Spine itself, answering as Spine: proxy_spine)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from mhs.directory import Directory, Party
from mhs.ebxml import (
    EbxmlError,
    ErrorDetail,
    MessageHeader,
    build_message_error,
    peek_header,
    timestamp_now,
)
from mhs.ids import new_id
from mhs.observe.events import Event
from mhs.observe.logs import get_logger
from mhs.roles.common import DIRECTORY, LOG, SETTINGS, create_role_app
from mhs.roles.http.client import client_session
from mhs.roles.http.limits import TooLarge, read_capped
from mhs.roles.http.relay import forwarded_headers
from mhs.roles.spine_proxy.as_spine import answer_as_spine, install_spine
from mhs.roles.spine_proxy.checking import (
    check,
    message_fields,
    method_not_allowed,
    refuse,
    ssp_request,
)
from mhs.roles.spine_proxy.faults import apply_faults, install_fault_control
from mhs.roles.spine_proxy.gpconnect import add_gpconnect_routes
from mhs.roles.spine_proxy.sync import add_sync_route
from mhs.settings import Settings
from mhs.ssp import Refusal, SspRequest

ROLE = "spine-proxy"
SESSION = web.AppKey("session", aiohttp.ClientSession)


def create_spine_proxy_app(settings: Settings, directory: Directory) -> web.Application:
    """The Spine proxy simulator application. It talks HTTP only: no broker."""
    app = create_role_app(ROLE, settings, directory, None, get_logger(ROLE), uses_broker=False)
    app.cleanup_ctx.append(_session_ctx)
    install_spine(app)
    install_fault_control(app)
    add_gpconnect_routes(app)
    add_sync_route(app)
    app.router.add_post("/{tail:.*}", relay)
    app.router.add_route("*", "/{tail:.*}", method_not_allowed)
    return app


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with client_session(settings, total_s=settings.forward_timeout_s) as session:
        app[SESSION] = session
        yield


async def relay(request: web.Request) -> web.StreamResponse:
    """Check one ebXML request as the SSP would, then forward it to the receiver's MHS."""
    ssp = ssp_request(request)
    fields = message_fields(request, ssp)
    refusal = check(request, ssp)
    if refusal is not None:
        return refuse(request, refusal, fields)
    receiver = request.app[DIRECTORY].by_asid(ssp.to_asid or "")
    assert receiver is not None  # the checks passed: Ssp-To is registered
    try:
        body = await read_capped(request)
        header = peek_header(request.headers.get("Content-Type", ""), body)
    except TooLarge as error:
        return refuse(request, Refusal.too_large(error.limit), fields)
    except EbxmlError as error:
        return refuse(request, Refusal.bad_request(f"not an ebXML message: {error}"), fields)
    fields["message_id"] = header.message_id
    fields["correlation_id"] = header.conversation_id
    mismatch = _header_mismatch(header, ssp, receiver)
    if mismatch is not None:
        return refuse(request, Refusal.bad_request(mismatch), fields)
    if header.cpa_id != receiver.cpa_id:
        return _message_error(
            header, ErrorDetail("ebxml", "ValueNotRecognized", "Error", "501319:Unknown eb:CPAId")
        )
    if receiver.spine:
        session = request.app[SESSION]
        return await apply_faults(
            request,
            header,
            fields,
            lambda: answer_as_spine(
                request, body, header=header, spine=receiver, fields=fields, session=session
            ),
        )
    return await apply_faults(
        request, header, fields, lambda: _forward(request, receiver, body, fields)
    )


def _header_mismatch(header: MessageHeader, ssp: SspRequest, receiver: Party) -> str | None:
    """Where the ebXML header disagrees with the Ssp-* headers the checks passed."""
    if header.action != ssp.interaction_id:
        return f"eb:Action {header.action} does not match Ssp-InteractionID {ssp.interaction_id}"
    if header.to_party_id != receiver.party_key:
        return f"eb:To PartyId {header.to_party_id} is not the party key of Ssp-To {receiver.asid}"
    return None


async def _forward(
    request: web.Request, receiver: Party, body: bytes, fields: dict[str, str | None]
) -> web.Response:
    app = request.app
    url = app[SETTINGS].endpoint_of(receiver.mhs, receiver.endpoint)
    forward_headers = forwarded_headers(request.headers.items())
    started = time.perf_counter()
    try:
        async with app[SESSION].post(url, data=body, headers=forward_headers) as response:
            reply = await response.read()
            status = response.status
            content_type = response.headers.get("Content-Type")
    except TimeoutError:
        return refuse(request, Refusal.timed_out(url), fields)
    except aiohttp.ClientError as error:
        return refuse(request, Refusal.unreachable(url, str(error)), fields)
    app[LOG].info(
        Event.PROXY_FORWARDED,
        status=status,
        endpoint=url,
        outcome="forwarded",
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        **fields,
    )
    response_headers = {"Content-Type": content_type} if content_type else {}
    return web.Response(status=status, body=reply, headers=response_headers)


def _message_error(header: MessageHeader, error: ErrorDetail) -> web.Response:
    body = build_message_error(header, [error], message_id=new_id(), timestamp=timestamp_now())
    return web.Response(status=200, body=body, content_type="text/xml")
