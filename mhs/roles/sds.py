"""The Spine Directory Service simulator: the SDS FHIR API's ``GET /Device`` and
``GET /Endpoint`` over the topology (mhs.directory.sds), for NHS adaptors and consumers to
find systems and endpoints as they find them in SDS.

Its own role (``sds``, port 8086): it needs no broker and answers from the directory and
the settings' addresses (endpoint and GP Connect overrides, the Spine proxy's URL), so what
it names is where this deployment's roles really listen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

from mhs.directory import Directory
from mhs.directory.sds import SdsDirectory, search_bundle
from mhs.directory.sds_query import (
    SdsError,
    SdsQuery,
    accepted_type,
    check_correlation_id,
    device_query,
    endpoint_query,
    sds_outcome,
)
from mhs.ids import new_id
from mhs.observe.events import Event
from mhs.observe.logs import get_logger
from mhs.roles.common import LOG, create_role_app, json_response
from mhs.settings import Settings
from mhs.spine.requests import SPINE_PATHS

ROLE = "sds"
SDS = web.AppKey("sds", SdsDirectory)
CORRELATION = "X-Correlation-ID"


def create_sds_app(settings: Settings, directory: Directory) -> web.Application:
    """The SDS API over ``directory``, naming the endpoints ``settings`` gives the roles."""
    app = create_role_app(ROLE, settings, directory, None, get_logger(ROLE), uses_broker=False)
    app[SDS] = SdsDirectory(directory, settings, SPINE_PATHS)
    app.router.add_get("/Device", _search(device_query, SdsDirectory.find_devices))
    app.router.add_get("/Endpoint", _search(endpoint_query, SdsDirectory.find_endpoints))
    app.router.add_route("*", "/Device", _not_allowed)
    app.router.add_route("*", "/Endpoint", _not_allowed)
    # After every other route: any other path is SDS's 404 OperationOutcome.
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


Finder = Callable[[SdsDirectory, SdsQuery], list[dict[str, object]]]


def _search(
    parse: Callable[[list[tuple[str, str]]], SdsQuery], find: Finder
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        given = request.headers.get(CORRELATION)
        # A missing or malformed one is replaced, as SDS does, so every answer carries one.
        correlation_id = new_id()
        try:
            check_correlation_id(given)
            correlation_id = given or correlation_id
            query = parse(list(request.query.items()))
            content_type = accepted_type(request.headers.get("Accept"))
        except SdsError as error:
            request.app[LOG].info(
                Event.SDS_REFUSED,
                path=request.path,
                status=error.status,
                detail=error.diagnostics,
                outcome="refused",
            )
            return _error(error, correlation_id)
        base = f"{request.scheme}://{request.host}{request.path}/"
        bundle = search_bundle(find(request.app[SDS], query), unquote(str(request.url)), base)
        request.app[LOG].info(
            Event.SDS_ANSWERED,
            path=request.path,
            query=request.query_string,
            total=bundle["total"],
            outcome="answered",
        )
        response = json_response(bundle, content_type=content_type)
        response.headers[CORRELATION] = correlation_id
        return response

    return handler


def _error(error: SdsError, correlation_id: str, **headers: str) -> web.Response:
    response = json_response(
        sds_outcome(error, correlation_id),
        status=error.status,
        content_type="application/fhir+json",
    )
    response.headers.update({CORRELATION: correlation_id, **headers})
    return response


async def _not_allowed(request: web.Request) -> web.Response:
    error = SdsError(405, "HTTP operation not supported")
    return _error(error, new_id(), Allow="GET")


async def _not_found(request: web.Request) -> web.Response:
    return _error(SdsError(404, "HTTP endpoint not found"), new_id())
