"""Spine acceptance: ``POST /`` answered once the delivery worker has settled the message,
as the NHS adaptor answers once Spine has (``MHS_ACCEPTANCE=spine``, or per request the
``mhs-acceptance: spine`` header; ``queued``, the default, answers 202 once RabbitMQ holds it).

The message is queued durably first, as in queued acceptance, naming this replica's reply
queue; the worker that settles it tells that queue how it ended (mhs.messages.outcomes).
The request is answered 202 when the proxy accepted the message, and with the adaptor's 500
JSON (mhs.reliability.errors) when it was given up. A message still being retried after
``MHS_ACCEPTANCE_TIMEOUT_S`` (or when this replica stops) is answered 202 with
``mhs-outcome: pending``: it is durable and will be delivered or its sender notified, and a
500 would have the caller send it again. Every answer here says ``mhs-outcome``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import get_args

import orjson
from aiohttp import web

from mhs.messages.outcomes import DeliveryOutcome
from mhs.messages.records import OutboundRecord
from mhs.observe.events import Event
from mhs.reliability.errors import error_body
from mhs.roles.common import LOG, SETTINGS, text_error
from mhs.roles.outbound.auth import Refused
from mhs.roles.outbound.replies import REPLIES, AlreadyWaiting, GivenUp, hold_for_reply
from mhs.settings import AcceptanceMode

ACCEPTANCE_HEADER = "mhs-acceptance"
OUTCOME_HEADER = "mhs-outcome"
PENDING = "pending"
_MODES: tuple[AcceptanceMode, ...] = get_args(AcceptanceMode)


def acceptance_of(request: web.Request) -> AcceptanceMode:
    """The request's ``mhs-acceptance``, or without one ``MHS_ACCEPTANCE``."""
    given = request.headers.get(ACCEPTANCE_HEADER)
    if given is None:
        return request.app[SETTINGS].acceptance
    for mode in _MODES:
        if given.strip().lower() == mode:
            return mode
    allowed = " or ".join(f"'{mode}'" for mode in _MODES)
    raise Refused(400, f"{ACCEPTANCE_HEADER} header must be {allowed}, got {given!r}")


async def hold_for_outcome(
    request: web.Request,
    record: OutboundRecord,
    fields: dict[str, str],
    send: Callable[[str], Awaitable[web.Response | None]],
    *,
    reply: bool,
) -> web.Response:
    """Queue the accepted message (``send`` names the queue to tell, and returns the answer
    to give if queueing failed) and answer with how its delivery ended; with ``reply``
    (``wait-for-response: true``), a delivered message waits on for its reply as usual."""
    app = request.app
    replies = app[REPLIES]
    started = time.perf_counter()
    try:
        async with replies.awaiting_outcome(record.message_id) as outcome:
            if reply:
                return await hold_for_reply(
                    request, record, fields, lambda: send(replies.queue), outcome=outcome
                )
            not_sent = await send(replies.queue)
            if not_sent is not None:
                return not_sent
            try:
                async with asyncio.timeout(app[SETTINGS].acceptance_timeout_s):
                    settled = await outcome
            except TimeoutError:
                settled = None
    except GivenUp as given_up:
        settled = given_up.outcome
    except AlreadyWaiting:
        text = (
            f"a request for message {record.message_id} is already waiting for its "
            "outcome; nothing was sent again"
        )
        app[LOG].warning(Event.MESSAGE_REFUSED, status=409, reason=text, **fields)
        return text_error(409, text)
    return _answer(app, record, fields, settled, started)


def _answer(
    app: web.Application,
    record: OutboundRecord,
    fields: dict[str, str],
    settled: DeliveryOutcome | None,
    started: float,
) -> web.Response:
    """202 delivered or pending (``settled`` None), or the adaptor's 500 for a give-up."""
    outcome = PENDING if settled is None else settled.outcome
    status = 202 if settled is None or settled.delivered else 500
    app[LOG].info(
        Event.MESSAGE_OUTCOME_ANSWERED,
        status=status,
        outcome=outcome,
        reason=None if settled is None else settled.reason,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        **fields,
    )
    headers = {**record.caller_ids, OUTCOME_HEADER: outcome}
    if settled is None or settled.delivered:
        return web.Response(status=202, headers=headers)
    return spine_errors(settled.errors, headers)


def spine_errors(items: Sequence[Mapping[str, str]], headers: Mapping[str, str]) -> web.Response:
    """The NHS adaptor's 500 for a message Spine refused: its error JSON around ``items``."""
    # text/plain, as the adaptor labels this JSON: its clients read the body as they get it.
    return web.Response(
        status=500,
        body=orjson.dumps(error_body(items)),
        content_type="text/plain",
        headers=headers,
    )
