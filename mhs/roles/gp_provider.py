"""The GP Connect provider simulator: the hosted practices' provider endpoints.

Its own role (``gp-provider``, port 8085) rather than a part of the inbound MHS: in SDS a
practice's GP Connect provider is a CMA endpoint of its own, separate from the MHS's
``/reliablemessaging`` one; it answers synchronously, needs no broker, and with TLS on it
accepts only the Spine proxy, as providers must.
"""

from __future__ import annotations

import time

from aiohttp import web

from mhs.directory import Directory, Mhs
from mhs.observe.events import Event
from mhs.observe.logs import get_logger
from mhs.provider.audit_file import audit_path
from mhs.provider.audit_log import AuditLog
from mhs.provider.provider import Provider, ProviderRequest
from mhs.roles.common import LOG, create_role_app
from mhs.roles.http.client_certs import only_from_spine_proxy
from mhs.roles.http.fhir import fhir_response, refused
from mhs.roles.http.limits import TooLarge, read_capped
from mhs.roles.provider_audit import (
    AUDIT,
    FACTS,
    AuditFacts,
    audit_ctx,
    audit_trail,
    audited,
)
from mhs.settings import Settings
from mhs.ssp import JwtPolicy, Refusal, provider_outcome

ROLE = "gp-provider"
PROVIDER = web.AppKey("provider", Provider)
SERVED = web.AppKey("served", Mhs)


def create_gp_provider_app(
    settings: Settings, directory: Directory, *, mhs_name: str | None = None
) -> web.Application:
    """The provider endpoints of ``mhs_name``'s practices (default: settings.local_mhs, else
    the hosted MHS), at that MHS's GP Connect base URL (or its override)."""
    name = mhs_name or settings.local_mhs
    served = directory.mhs(name) if name else directory.hosted_mhs
    if served is None:
        raise ValueError(f"MHS {name!r} is not in the topology {directory.source}")
    base = settings.gpconnect_of(served.name, served.gpconnect_endpoint)
    if base is None:
        raise ValueError(f"MHS {served.name!r} has no gpconnect_endpoint in {directory.source}")
    log = get_logger(ROLE).bind(mhs=served.name)
    app = create_role_app(ROLE, settings, directory, None, log, uses_broker=False)
    app[SERVED] = served
    app[PROVIDER] = Provider(
        [(p, base) for p in directory.parties if p.mhs == served.name],
        JwtPolicy(settings.jwt_timing, settings.jwt_leeway_s),
        time.time,
    )
    app[AUDIT] = AuditLog(audit_path(settings.audit_dir, served.name))
    app.cleanup_ctx.append(audit_ctx)
    # Outermost, so that the client-certificate refusals below it are audited too.
    app.middlewares.append(audited)
    only_from_spine_proxy(app, _refuse)
    app.router.add_get("/audit", audit_trail)
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def _refuse(request: web.Request, refusal: Refusal) -> web.Response:
    request[FACTS] = AuditFacts(refusal=refusal)
    trace = {"trace_id": request.headers.get("Ssp-TraceID")}
    return refused(request, Event.PROVIDER_REFUSED, refusal, trace, provider_outcome)


async def answer(request: web.Request) -> web.Response:
    """Answer one GP Connect request for one of the served practices."""
    try:
        body = await read_capped(request)
    except TooLarge as error:
        return _refuse(request, Refusal.too_large(error.limit))
    headers = request.headers
    asked = ProviderRequest(
        request.method, request.path, request.raw_path.partition("?")[2], headers, body
    )
    result = request.app[PROVIDER].answer(asked)
    request[FACTS] = AuditFacts(asked, result)
    fields = {
        "interaction_id": result.interaction.urn if result.interaction else None,
        "trace_id": headers.get("Ssp-TraceID"),
        "from_asid": headers.get("Ssp-From"),
        "to_asid": result.party.asid if result.party else None,
        "to_ods": result.party.ods_code if result.party else None,
    }
    if result.refusal is not None:
        # The provider answers a refusal with the refusal's own status.
        return refused(request, Event.PROVIDER_REFUSED, result.refusal, fields, provider_outcome)
    assert result.resource is not None
    request.app[LOG].info(
        Event.PROVIDER_ANSWERED, status=result.status, outcome="answered", **fields
    )
    return fhir_response(request, result.resource, result.status)
