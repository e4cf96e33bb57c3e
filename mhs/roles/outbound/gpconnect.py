"""GP Connect through the outbound MHS: ``<method> /gpconnect/<provider ODS>/<FHIR request>``.

A hosted instance authenticates as itself with ``Mhs-Credential`` (``Authorization`` carries
the GP Connect JWT on this path). The outbound MHS stamps ``Ssp-From`` with the instance's
own ASID and ``Ssp-TraceID`` (a new UUID unless the caller gave one), resolves ``Ssp-To``
and the provider's service root from the directory, makes the JWT's
``requesting_organization`` name the instance's own organisation, and sends the request
through the Spine proxy as the SSP expects it: ``<proxy>/<service root>/<FHIR request>``.
The proxy's (or provider's) answer streams back as it comes.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from mhs.directory import Party
from mhs.directory.model import ODS_PATTERN
from mhs.gpconnect.interactions import GpcInteraction, gpconnect_interaction, service_root
from mhs.ids import ODS_SYSTEM, is_uuid
from mhs.observe.events import Event
from mhs.roles.common import DIRECTORY, LOG, SETTINGS
from mhs.roles.http.client import client_session
from mhs.roles.http.fhir import refused
from mhs.roles.http.limits import TooLarge, read_capped
from mhs.roles.http.relay import (
    HOP_BY_HOP,
    forwarded_headers,
    relayed_response,
    stream_body,
    upstream,
)
from mhs.ssp import JwtRefused, Refusal
from mhs.ssp.jwt_claims import (
    bearer_token,
    decode_unsigned,
    encode_unsigned,
    requesting_ods,
)
from mhs.ssp.origin import not_originating

CREDENTIAL_HEADER = "Mhs-Credential"
ROUTE = "/gpconnect/{ods}/{fhir:.*}"
PROXY_SESSION = web.AppKey("gpconnect_proxy_session", aiohttp.ClientSession)
# Hop-by-hop headers, and those this path sets itself (the credential never leaves).
_NOT_FORWARDED = HOP_BY_HOP | {
    "mhs-credential",
    "authorization",
    "ssp-from",
    "ssp-to",
    "ssp-traceid",
}
_ODS = re.compile(ODS_PATTERN)


class Refused(Exception):
    """A GP Connect request we will not send on."""

    def __init__(self, refusal: Refusal, **headers: str) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal
        self.headers = headers


def install_gpconnect(app: web.Application) -> None:
    """Add the GP Connect path to the outbound MHS application."""
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_route("*", ROUTE, forward_gpconnect)


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Longer than the proxy's own wait for the provider, so the proxy's 504 reaches the caller.
    async with client_session(
        settings, total_s=settings.forward_timeout_s + settings.delivery_timeout_s
    ) as session:
        app[PROXY_SESSION] = session
        yield


def _authenticate(request: web.Request) -> Party:
    """The hosted instance the credential belongs to; a caller's own Ssp-From must be its."""
    credential = (request.headers.get(CREDENTIAL_HEADER) or "").strip()
    challenge = {"WWW-Authenticate": f'{CREDENTIAL_HEADER} realm="mhs"'}
    if not credential:
        raise Refused(
            Refusal(
                401,
                "security",
                "ACCESS_DENIED",
                f"{CREDENTIAL_HEADER}: <instance credential> required "
                "(Authorization carries the GP Connect JWT on this path)",
            ),
            **challenge,
        )
    party = request.app[DIRECTORY].by_credential(credential)
    if party is None or not party.hosted:
        raise Refused(
            Refusal(401, "security", "ACCESS_DENIED", f"unknown {CREDENTIAL_HEADER}"), **challenge
        )
    given = request.headers.get("Ssp-From")
    if given is not None and given.strip() != party.asid:
        raise Refused(
            Refusal.access_denied(
                f"Ssp-From {given.strip()[:40]!r} is not the ASID of this credential"
            )
        )
    return party


def _interaction(request: web.Request) -> GpcInteraction:
    urn = (request.headers.get("Ssp-InteractionID") or "").strip()
    if not urn:
        raise Refused(Refusal.bad_request("missing header(s): Ssp-InteractionID"))
    interaction = gpconnect_interaction(urn)
    if interaction is None:
        raise Refused(
            Refusal.bad_request(f"Ssp-InteractionID {urn[:120]!r} is not a GP Connect interaction")
        )
    return interaction


def _provider(request: web.Request, ods_code: str) -> Party:
    if _ODS.fullmatch(ods_code) is None:
        raise Refused(Refusal.bad_request(f"{ods_code[:40]!r} is not an ODS code"))
    provider = request.app[DIRECTORY].gpconnect_provider(ods_code)
    if provider is None:
        raise Refused(
            Refusal(
                404,
                "not-found",
                "ORGANISATION_NOT_FOUND",
                f"no GP Connect provider is registered for ODS code {ods_code}",
            )
        )
    given = request.headers.get("Ssp-To")
    if given is not None and given.strip() != provider.asid:
        raise Refused(
            Refusal.bad_request(
                f"Ssp-To {given.strip()[:40]!r} is not {provider.asid}, the GP Connect "
                f"provider at {provider.ods_code}"
            )
        )
    return provider


def _trace_id(request: web.Request) -> str:
    given = request.headers.get("Ssp-TraceID")
    if given is None or not given.strip():
        return str(uuid.uuid4())
    if not is_uuid(given.strip()):
        raise Refused(Refusal.bad_request(f"Ssp-TraceID {given[:64]!r} is not a UUID"))
    return given.strip()


def _jwt_for(request: web.Request, sender: Party) -> str:
    """The caller's JWT with ``requesting_organization`` naming the sender's organisation:
    filled in when absent, refused when it names one the sender may not request for (a
    host-rule portal may name its participants)."""
    try:
        token = bearer_token(request.headers.get("Authorization"))
        claims = decode_unsigned(token)
    except JwtRefused as error:
        raise Refused(error.refusal) from None
    if claims.get("requesting_organization") is None:
        claims["requesting_organization"] = {
            "resourceType": "Organization",
            "identifier": [{"system": ODS_SYSTEM, "value": sender.ods_code}],
            "name": sender.name,
        }
        return encode_unsigned(claims)
    named = requesting_ods(claims)
    if named is not None and not sender.may_request_for(named):
        raise Refused(Refusal.access_denied(not_originating(sender, named)))
    return token


async def forward_gpconnect(request: web.Request) -> web.StreamResponse:
    """Send one GP Connect request from a hosted instance through the Spine proxy."""
    fields: dict[str, Any] = {
        "interaction_id": request.headers.get("Ssp-InteractionID"),
        "to_ods": request.match_info["ods"][:40],
    }
    try:
        sender = _authenticate(request)
        fields.update(from_asid=sender.asid, from_ods=sender.ods_code)
        trace_id = _trace_id(request)
        fields["trace_id"] = trace_id
        interaction = _interaction(request)
        provider = _provider(request, request.match_info["ods"])
        fields["to_asid"] = provider.asid
        token = _jwt_for(request, sender)
        body = await read_capped(request)
    except TooLarge as error:
        return _refuse(request, Refused(Refusal.too_large(error.limit)), fields)
    except Refused as error:
        return _refuse(request, error, fields)
    settings = request.app[SETTINGS]
    base = settings.gpconnect_of(provider.mhs, provider.gpconnect_endpoint)
    assert base is not None  # gpconnect_provider() only finds parties with an endpoint
    # The FHIR request as sent (percent-encoding kept): everything after /gpconnect/<ods>/.
    raw_path, _, raw_query = request.raw_path.partition("?")
    fhir = raw_path.split("/", 3)[3]
    target = f"{service_root(base, provider.ods_code, interaction.capability)}/{fhir}"
    url = f"{settings.proxy_url}/{target}"
    if raw_query:
        url += "?" + raw_query
    headers = forwarded_headers(request.headers.items(), _NOT_FORWARDED)
    headers.update(
        {
            "Ssp-From": sender.asid,
            "Ssp-To": provider.asid,
            "Ssp-TraceID": trace_id,
            "Ssp-InteractionID": interaction.urn,
            "Authorization": f"Bearer {token}",
        }
    )
    return await _send(request, url, body, headers, fields)


def _refuse(request: web.Request, why: Refused, fields: dict[str, Any]) -> web.Response:
    response = refused(request, Event.GPCONNECT_REFUSED, why.refusal, fields)
    response.headers.update(why.headers)
    return response


async def _send(
    request: web.Request,
    url: str,
    body: bytes,
    headers: CIMultiDict[str],
    fields: dict[str, Any],
) -> web.StreamResponse:
    started = time.perf_counter()
    response: web.StreamResponse | None = None
    proxy = request.app[SETTINGS].proxy_url
    try:
        async with upstream(request.app[PROXY_SESSION], request, url, body, headers) as answer:
            response = relayed_response(answer, _NOT_FORWARDED)
            await stream_body(request, answer, response)
    except (TimeoutError, aiohttp.ClientError) as error:
        if response is None:
            refusal = (
                Refusal.timed_out(proxy)
                if isinstance(error, TimeoutError)
                else Refusal.unreachable(proxy, str(error))
            )
            return _refuse(request, Refused(refusal), fields)
        request.app[LOG].warning(
            Event.GPCONNECT_FORWARDED,
            status=response.status,
            outcome="interrupted",
            reason=f"{type(error).__name__}: {error}",
            **fields,
        )
        if request.transport is not None:
            request.transport.abort()
        return response
    request.app[LOG].info(
        Event.GPCONNECT_FORWARDED,
        status=response.status,
        outcome="forwarded",
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        **fields,
    )
    return response
