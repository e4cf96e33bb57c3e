"""``GET /messages/{message_id}`` on the outbound MHS: a message's status timeline.

Authenticated as ``POST /`` is (a hosted instance's bearer credential), and answered only
to the message's sender or recipient: anyone else, like an unknown id, gets the same 404,
so nobody learns that someone else's message exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from mhs.ids import wire_id
from mhs.observe.status import build_timeline, status_name
from mhs.roles.common import DIRECTORY, SETTINGS, json_response, opened_state_store, text_error
from mhs.roles.outbound.auth import Refused, authenticate
from mhs.state import StateError, StateStore

STATE = web.AppKey("state", StateStore)


def install_status(app: web.Application) -> None:
    """The outbound MHS's state store (timelines, wait-for-response) and the status route."""
    app.cleanup_ctx.append(_state_ctx)
    app.router.add_get("/messages/{message_id}", message_status)


async def _state_ctx(app: web.Application) -> AsyncIterator[None]:
    async with opened_state_store(app) as store:
        app[STATE] = store
        yield


async def message_status(request: web.Request) -> web.Response:
    """The timeline of one message the calling instance sent or received."""
    app = request.app
    try:
        caller = authenticate(request, app[DIRECTORY])
    except Refused as refused:
        return text_error(refused.status, refused.text, **refused.headers)
    given = request.match_info["message_id"]
    # Asked by the id the caller sent (any string), or by the UUID it travelled as.
    message_id = wire_id(given, caller.asid)
    if app[SETTINGS].status_ttl_s == 0:
        return text_error(404, "message status is not recorded here (MHS_STATUS_TTL_S=0)")
    try:
        records = await app[STATE].read_list(status_name(message_id))
    except StateError:
        return text_error(
            503,
            "message status is not available: the state store did not answer; ask again",
            **{"Retry-After": "1"},
        )
    timeline = build_timeline(message_id, records)
    if timeline is None or not timeline.visible_to(caller.asid):
        return text_error(404, f"no message {given} sent or received by {caller.asid}")
    return json_response(timeline.public())
