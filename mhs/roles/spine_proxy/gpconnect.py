"""The Spine proxy as GP Connect's forward proxy: ``/<provider service root>/<FHIR request>``.

The SSP's checks run first (mhs/ssp, in the documented order); a request that passes goes
to the provider unmodified apart from hop-by-hop headers and an RFC 7239 ``Forwarded``
line, and the provider's answer streams back with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from mhs.observe.events import Event
from mhs.roles.common import LOG, SETTINGS
from mhs.roles.http.client import client_session
from mhs.roles.http.limits import TooLarge, read_capped
from mhs.roles.http.relay import forwarded_headers, relayed_response, stream_body, upstream
from mhs.roles.spine_proxy.checking import check, refuse, ssp_request
from mhs.ssp import FhirCall, Refusal
from mhs.ssp.jwt_claims import JwtRefused, bearer_token, decode_unsigned, requesting_ods

PROVIDER_SESSION = web.AppKey("provider_session", aiohttp.ClientSession)
TARGET_ROUTE = r"/{target:https?://.*}"


def add_gpconnect_routes(app: web.Application) -> None:
    """Serve GP Connect requests (any method) at ``/<http(s)://...>``; register this before
    the ebXML catch-all so those paths never reach it."""
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_route("*", TARGET_ROUTE, forward)


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with client_session(settings, total_s=settings.forward_timeout_s) as session:
        app[PROVIDER_SESSION] = session
        yield


def _forwarded(request: web.Request) -> str:
    peer = request.remote or "unknown"
    if ":" in peer:
        peer = f'"[{peer}]"'
    return f"for={peer};proto={request.scheme};host={request.host}"


async def forward(request: web.Request) -> web.StreamResponse:
    """Check one GP Connect request as the SSP would, then pass it to the provider."""
    headers = request.headers
    target, _, query = request.raw_path[1:].partition("?")
    ssp_fields: dict[str, str | None] = {
        "interaction_id": headers.get("Ssp-InteractionID"),
        "from_asid": headers.get("Ssp-From"),
        "to_asid": headers.get("Ssp-To"),
        "trace_id": headers.get("Ssp-TraceID"),
    }
    try:
        body = await read_capped(request)
    except TooLarge as error:
        return refuse(request, Refusal.too_large(error.limit), ssp_fields)
    fhir = FhirCall(request.method, target, query, headers.get("Authorization"), body)
    refusal = check(request, ssp_request(request, fhir))
    if refusal is not None:
        return refuse(request, refusal, ssp_fields)
    try:
        ssp_fields["from_ods"] = requesting_ods(
            decode_unsigned(bearer_token(headers.get("Authorization")))
        )
    except JwtRefused:  # pragma: no cover - the checks above passed this token
        ssp_fields["from_ods"] = None
    return await _pass_on(request, request.raw_path[1:], body, ssp_fields)


async def _pass_on(
    request: web.Request, url: str, body: bytes, fields: dict[str, str | None]
) -> web.StreamResponse:
    app = request.app
    outgoing = forwarded_headers(request.headers.items())
    outgoing.add("Forwarded", _forwarded(request))
    endpoint = url.partition("?")[0]
    started = time.perf_counter()
    response: web.StreamResponse | None = None
    try:
        async with upstream(app[PROVIDER_SESSION], request, url, body, outgoing) as answer:
            response = relayed_response(answer)
            response.headers.setdefault("Cache-Control", "no-store")
            await stream_body(request, answer, response)
    except (TimeoutError, aiohttp.ClientError) as error:
        if response is None:
            if isinstance(error, TimeoutError):
                return refuse(request, Refusal.timed_out(endpoint), fields)
            return refuse(request, Refusal.unreachable(endpoint, str(error)), fields)
        # Too late for a status: cut the connection so the caller cannot take a truncated
        # body for a whole one.
        app[LOG].warning(
            Event.PROXY_FORWARDED,
            status=response.status,
            endpoint=endpoint,
            outcome="interrupted",
            reason=f"{type(error).__name__}: {error}",
            **fields,
        )
        if request.transport is not None:
            request.transport.abort()
        return response
    app[LOG].info(
        Event.PROXY_FORWARDED,
        status=response.status,
        endpoint=endpoint,
        outcome="forwarded",
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        **fields,
    )
    return response
