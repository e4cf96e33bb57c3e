"""How the Spine proxy refuses: a logged OperationOutcome in the format the caller asked for."""

from __future__ import annotations

from aiohttp import web

from mhs.observe.events import Event
from mhs.roles.common import LOG
from mhs.roles.http.fhir import outcome_response
from mhs.ssp import Refusal


def refuse(request: web.Request, refusal: Refusal, fields: dict[str, str | None]) -> web.Response:
    """Log ``proxy.refused`` with Spine's token and answer the OperationOutcome."""
    request.app[LOG].info(
        Event.PROXY_REFUSED,
        status=refusal.status,
        reason=refusal.token,
        detail=refusal.detail,
        outcome="refused",
        **fields,
    )
    return outcome_response(request, refusal)


async def method_not_allowed(request: web.Request) -> web.Response:
    """Any method the proxy does not take at this path: 405, severity fatal, as Spine."""
    return refuse(request, Refusal.method_not_allowed(request.method), {})
