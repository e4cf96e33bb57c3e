"""The Spine proxy answering for Spine itself: messages addressed to Spine's own services.

Such a message passes the SSP's checks like any other (and any fault rules for it); then,
instead of forwarding it, the proxy acknowledges it as Spine's MHS would (an ebXML
Acknowledgment when one is asked for, else 202) and, for an interaction whose catalogue
entry names a reply, sends Spine's reply (mhs.spine.service) to the sender's MHS in the
background, as Spine's own later message would arrive.

Fault rules apply to the reply too, chosen by its sender (Spine's ASID), receiver (the
original sender) and interaction (the reply's): ``latency`` delays it, ``duplicate``
sends it that many times, ``timeout`` holds it for its hold time and then drops it, and
every other kind drops it. Removing a rule while it holds a reply lets the reply go.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from mhs.directory import Interaction, Party
from mhs.ebxml import EbxmlError, MessageHeader, build_acknowledgment, parse_message, timestamp_now
from mhs.ids import new_id
from mhs.observe.events import Event
from mhs.roles.common import DIRECTORY, LOG, SETTINGS
from mhs.roles.http.send import send_judged
from mhs.roles.spine_proxy.faults import FAULTS, hold_seconds, log_decision
from mhs.spine.requests import SpineRequest
from mhs.spine.responders import Asked, asked_of
from mhs.spine.service import spine_reply

REPLIES = web.AppKey("spine_replies", set[asyncio.Task[None]])


def install_spine(app: web.Application) -> None:
    """Let the proxy send Spine's replies (after its HTTP session: replies stop first)."""
    app.cleanup_ctx.append(_replies_ctx)


async def _replies_ctx(app: web.Application) -> AsyncIterator[None]:
    tasks: set[asyncio.Task[None]] = set()
    app[REPLIES] = tasks
    yield
    # A reply still waiting when the proxy stops is not sent, as when Spine loses one.
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def answer_as_spine(
    request: web.Request,
    body: bytes,
    *,
    header: MessageHeader,
    spine: Party,
    fields: dict[str, str | None],
    session: aiohttp.ClientSession,
) -> web.Response:
    """Spine's MHS receiving ``header``'s message (``body``): acknowledge it, schedule the
    reply."""
    app = request.app
    sender = app[DIRECTORY].by_asid(fields.get("from_asid") or "")
    interaction = app[DIRECTORY].interaction(header.action)
    if sender is not None and interaction is not None and interaction.reply:
        # The request's HL7 is read in the reply's own task: the acknowledgment needs none of it.
        content_type = request.headers.get("Content-Type", "")
        task = asyncio.get_running_loop().create_task(
            _send_reply(app, session, (header, content_type, body), (spine, sender), fields)
        )
        app[REPLIES].add(task)
        task.add_done_callback(app[REPLIES].discard)
    status = 200 if header.ack_requested else 202
    app[LOG].info(Event.PROXY_ANSWERED_AS_SPINE, status=status, outcome="answered", **fields)
    if not header.ack_requested:
        return web.Response(status=202)
    ack = build_acknowledgment(header, message_id=new_id(), timestamp=timestamp_now())
    return web.Response(status=200, body=ack, content_type="text/xml")


def _asked(content_type: str, body: bytes, header: MessageHeader) -> Asked:
    """What the request asks about, read from its HL7 (the checks passed its ebXML header)."""
    try:
        payload = parse_message(content_type, body).payload
    except EbxmlError:
        payload = None
    return asked_of(payload, message_id=header.message_id, interaction_id=header.action)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """One reply of Spine's on its way: what it is, where it goes, what its log lines say."""

    reply: SpineRequest
    interaction: Interaction
    url: str
    fields: dict[str, str | None]


async def _send_reply(
    app: web.Application,
    session: aiohttp.ClientSession,
    received: tuple[MessageHeader, str, bytes],
    parties: tuple[Party, Party],
    request_fields: Mapping[str, str | None],
) -> None:
    request, content_type, body = received
    spine, sender = parties
    directory = app[DIRECTORY]
    interaction = directory.interaction(request.action)
    action = interaction.reply if interaction is not None else None
    reply_interaction = directory.interaction(action) if action else None
    if action is None or reply_interaction is None:
        return
    asked = _asked(content_type, body, request)
    reply = spine_reply(
        request, asked, action, reply_interaction, message_id=new_id(), spine=spine, sender=sender
    )
    fields = {
        **request_fields,
        "reply_message_id": reply.message_id,
        "interaction_id": action,
        "from_asid": spine.asid,
        "to_asid": sender.asid,
    }
    url = app[SETTINGS].endpoint_of(sender.mhs, sender.endpoint)
    outgoing = _Outgoing(reply, reply_interaction, url, fields)
    for _ in range(await _copies_after_faults(app, outgoing)):
        await _post(app, session, outgoing)


async def _copies_after_faults(app: web.Application, outgoing: _Outgoing) -> int:
    """Wait as the fault rules say; how many copies of the reply to send (0: dropped)."""
    control = app[FAULTS]
    fields = outgoing.fields
    decision = control.plan.decide(
        outgoing.reply.message_id,
        fields.get("from_asid") or "",
        fields.get("to_asid") or "",
        outgoing.reply.interaction_id,
    )
    if decision.answer is None and not decision.delays:
        return 1
    log_decision(app, decision, fields)
    if decision.delays:
        await control.hold([d.rule for d in decision.delays], decision.delay_ms / 1000)
    rule = decision.answer
    if rule is None or not control.active([rule]):
        return 1
    if rule.kind == "duplicate":
        return rule.copies
    if rule.kind == "timeout" and not await control.hold([rule], hold_seconds(app, rule)):
        return 1  # the rule was removed while it held the reply
    app[LOG].info(
        Event.PROXY_REPLY_SENT,
        outcome="dropped",
        reason=f"fault {rule.id} ({rule.kind})",
        **fields,
    )
    return 0


async def _post(app: web.Application, session: aiohttp.ClientSession, outgoing: _Outgoing) -> None:
    """POST the reply, retrying as its interaction's reliability says."""
    reliability = outgoing.interaction.reliability
    interval_s = reliability.retry_interval.total_seconds()
    started = time.perf_counter()
    reply, fields = outgoing.reply, outgoing.fields
    last = await send_judged(
        session,
        outgoing.url,
        reply.body,
        reply.headers,
        first=1,
        next_wait=lambda attempt: interval_s if attempt.number <= reliability.retries else None,
    )
    sent = last.outcome.verdict == "accepted"
    app[LOG].info(
        Event.PROXY_REPLY_SENT,
        outcome="sent" if sent else "failed",
        status=last.status,
        attempt=last.number,
        reason=None if sent else last.outcome.reason,
        endpoint=outgoing.url,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        **fields,
    )
