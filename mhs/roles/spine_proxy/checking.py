"""The SSP at the proxy's edge: a request's Ssp-* headers read and checked, and refusals
logged and answered as OperationOutcomes in the format the caller asked for."""

from __future__ import annotations

from aiohttp import web

from mhs.observe.events import Event
from mhs.roles.common import DIRECTORY, SETTINGS
from mhs.roles.http.client_certs import client_certificate
from mhs.roles.http.fhir import refused
from mhs.ssp import CheckContext, FhirCall, Refusal, SspRequest, check_request


def ssp_request(request: web.Request, fhir: FhirCall | None = None) -> SspRequest:
    """What the SSP reads of ``request``: its Ssp-* headers and client certificate."""
    headers = request.headers
    return SspRequest(
        trace_id=headers.get("Ssp-TraceID"),
        from_asid=headers.get("Ssp-From"),
        to_asid=headers.get("Ssp-To"),
        interaction_id=headers.get("Ssp-InteractionID"),
        client=client_certificate(request),
        fhir=fhir,
    )


def message_fields(request: web.Request, ssp: SspRequest) -> dict[str, str | None]:
    """The log fields of a message the proxy takes, as its headers name it."""
    return {
        "message_id": request.headers.get("Message-Id"),
        "correlation_id": request.headers.get("Correlation-Id"),
        "interaction_id": ssp.interaction_id,
        "from_asid": ssp.from_asid,
        "to_asid": ssp.to_asid,
        "trace_id": ssp.trace_id,
    }


def check(request: web.Request, ssp: SspRequest) -> Refusal | None:
    """None if Spine would pass ``ssp`` on, else why it refuses it."""
    app = request.app
    return check_request(app[DIRECTORY], ssp, CheckContext.of(app[SETTINGS]))


def refuse(request: web.Request, refusal: Refusal, fields: dict[str, str | None]) -> web.Response:
    """Log ``proxy.refused`` with Spine's token and answer the OperationOutcome."""
    return refused(request, Event.PROXY_REFUSED, refusal, fields)


async def method_not_allowed(request: web.Request) -> web.Response:
    """Any method the proxy does not take at this path: 405, severity fatal, as Spine."""
    return refuse(request, Refusal.method_not_allowed(request.method), {})
