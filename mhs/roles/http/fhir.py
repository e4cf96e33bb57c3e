"""FHIR answers over HTTP: OperationOutcomes and resources in the format the caller asked for."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from mhs.gpconnect.fhir import FhirFormat, negotiate, render
from mhs.observe.events import Event
from mhs.roles.common import LOG
from mhs.ssp import Refusal, operation_outcome

# Where a certificate was missing or wrong the SSP also closes the connection.
_CLOSE_AFTER = frozenset({495, 496})


def response_format(request: web.Request) -> FhirFormat | None:
    """JSON or XML: ``_format`` over ``Accept`` over the request's Content-Type; None when
    what was asked for is neither."""
    return negotiate(
        request.headers.get("Accept"),
        request.query.get("_format"),
        request.headers.get("Content-Type"),
    )


def fhir_response(
    request: web.Request, resource: Mapping[str, Any], status: int = 200
) -> web.Response:
    """``resource`` in the negotiated format (JSON when the ask was unusable), never cached."""
    body, content_type = render(resource, response_format(request) or "json")
    response = web.Response(status=status, body=body, headers={"Cache-Control": "no-store"})
    response.headers["Content-Type"] = content_type
    if status in _CLOSE_AFTER:
        response.force_close()
    return response


def refused(
    request: web.Request,
    event: Event,
    refusal: Refusal,
    fields: Mapping[str, Any],
    outcome: Callable[[Refusal], dict[str, Any]] = operation_outcome,
) -> web.Response:
    """Log ``event`` (status, Spine's token, detail, ``fields``) and answer ``refusal`` as an
    OperationOutcome: the SSP's wording unless ``outcome`` builds another (a provider's)."""
    request.app[LOG].info(
        event,
        status=refusal.status,
        reason=refusal.token,
        detail=refusal.detail,
        outcome="refused",
        **fields,
    )
    return fhir_response(request, outcome(refusal), refusal.status)
