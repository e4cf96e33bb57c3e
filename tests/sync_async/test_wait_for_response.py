"""wait-for-response: true holds the request until Spine's reply arrives, without polling."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from lxml import etree

from mhs.broker.factory import create_broker
from mhs.ids import new_id
from mhs.messages.sync_async import waiting_name
from mhs.observe.events import Event
from mhs.observe.logs import get_logger
from mhs.roles.outbound.replies import Replies
from mhs.state import create_state_store

from .conftest import (
    SCR_QUERY,
    SCR_REPLY,
    SENDER,
    SPINE,
    post,
    until,
)

pytestmark = pytest.mark.rabbitmq
NS = {"hl7": "urn:hl7-org:v3"}


def _reply_of(text: str, message_id: str) -> None:
    """``text`` is the HL7 payload of Spine's SCR reply acknowledging ``message_id``."""
    assert text.startswith(f'<{SCR_REPLY} xmlns="urn:hl7-org:v3">')
    hl7 = etree.fromstring(text.encode())
    # The request's HL7 id (its payload's <id root>, here the message id) is acknowledged.
    refs = hl7.xpath("hl7:acknowledgement/hl7:messageRef/hl7:id/@root", namespaces=NS)
    assert refs == [message_id]
    assert f'extension="{SENDER}"' in text
    assert f'extension="{SPINE}"' in text


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_held_request_is_answered_with_the_replys_payload(
    harness_factory: Any, redis_keys: str, store: str
) -> None:
    state_url = redis_keys if store == "redis" else None
    h = await harness_factory(state_url=state_url)
    message_id = new_id()
    status, text, headers = await post(h, h.url("outbound"), message_id=message_id)
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/xml")
    assert headers["Message-Id"] == message_id
    _reply_of(text, message_id)
    # The reply went to the held request, not to the instance's queue.
    assert await h.depth(h.settings.inbound_queue(SENDER)) == 0
    [answered] = h.events_for(Event.PROXY_ANSWERED_AS_SPINE, message_id)
    assert answered["to_asid"] == SPINE
    [sent] = h.events_for(Event.PROXY_REPLY_SENT, message_id)
    assert (sent["outcome"], sent["status"], sent["from_asid"]) == ("sent", 200, SPINE)
    [delivered] = h.events_for(Event.INBOUND_DELIVERED, message_id)
    assert delivered["queue"].startswith(h.settings.queue("replies."))
    [replied] = h.events_for(Event.MESSAGE_REPLIED, message_id)
    assert replied["status"] == 200
    # The registration is gone once the request is answered.
    state = create_state_store(state_url, prefix=h.settings.queue_prefix)
    await state.start()
    try:
        assert await state.get(waiting_name(message_id)) is None
    finally:
        await state.stop()


async def test_the_embedded_broker_holds_requests_too(harness_factory: Any) -> None:
    h = await harness_factory(memory=True)
    message_id = new_id()
    status, text, _ = await post(h, h.url("outbound"), message_id=message_id)
    assert status == 200, text
    _reply_of(text, message_id)


async def test_without_waiting_spines_reply_reaches_the_instance_queue(
    harness_factory: Any,
) -> None:
    h = await harness_factory()
    message_id = new_id()
    status, text, _ = await post(h, h.url("outbound"), message_id=message_id, wait=False)
    assert (status, text) == (202, "")
    reply = await h.take(h.settings.inbound_queue(SENDER))
    assert reply.message_id == message_id
    assert reply.headers["interaction-id"] == SCR_REPLY
    assert reply.headers["ref-to-message-id"] == message_id
    assert reply.headers["from-asid"] == SPINE
    assert reply.headers["from-party-key"] == "YES-0000806"
    assert reply.headers["to-asid"] == SENDER
    _reply_of(orjson.loads(reply.body)["payload"], message_id)


async def test_a_late_reply_times_out_with_500_and_still_reaches_the_instance_queue(
    harness_factory: Any,
) -> None:
    h = await harness_factory(sync_async_timeout_s=1.0)
    await h.add_fault(kind="latency", delay=2500, interaction_id=SCR_REPLY)
    message_id = new_id()
    status, text, headers = await post(h, h.url("outbound"), message_id=message_id)
    assert status == 500
    assert headers["Content-Type"].startswith("text/plain")
    assert text == (
        f"500: No reply to message {message_id} arrived within 1 s; it was sent, and its reply, "
        "when it comes, goes to your inbound queue"
    )
    [timed_out] = h.events_for(Event.MESSAGE_REPLY_TIMED_OUT, message_id)
    assert timed_out["outcome"] == "timed-out"
    late = await h.take(h.settings.inbound_queue(SENDER))
    assert late.message_id == message_id
    assert late.headers["interaction-id"] == SCR_REPLY
    _reply_of(orjson.loads(late.body)["payload"], message_id)


async def test_a_dropped_reply_times_out_and_nothing_arrives(harness_factory: Any) -> None:
    h = await harness_factory(sync_async_timeout_s=1.0)
    await h.add_fault(kind="timeout", hold_ms=100, from_asid=SPINE)
    message_id = new_id()
    status, text, _ = await post(h, h.url("outbound"), message_id=message_id)
    assert status == 500
    assert "arrived within 1 s" in text
    await until(lambda: bool(h.events_for(Event.PROXY_REPLY_SENT, message_id)), what="dropped")
    [dropped] = h.events_for(Event.PROXY_REPLY_SENT, message_id)
    assert dropped["outcome"] == "dropped"
    assert not h.events_for(Event.INBOUND_RECEIVED, message_id)
    assert await h.depth(h.settings.inbound_queue(SENDER)) == 0


async def test_two_replicas_each_get_their_own_replies(
    harness_factory: Any, replica_factory: Any, redis_keys: str
) -> None:
    h = await harness_factory(state_url=redis_keys)
    other = await replica_factory(h)
    urls = [h.url("outbound"), other.url] * 4
    ids = [new_id() for _ in urls]
    answers = await asyncio.gather(
        *(post(h, url, message_id=message_id) for url, message_id in zip(urls, ids, strict=True))
    )
    for (status, text, _), message_id in zip(answers, ids, strict=True):
        assert status == 200, text
        _reply_of(text, message_id)
    # Each reply went to the reply queue of the replica holding its request.
    queues = {
        h.events_for(Event.MESSAGE_AWAITING_REPLY, message_id)[0]["queue"]: url
        for url, message_id in zip(urls, ids, strict=True)
    }
    assert len(queues) == 2
    assert other.reply_queue in queues
    for url, message_id in zip(urls, ids, strict=True):
        [delivered] = h.events_for(Event.INBOUND_DELIVERED, message_id)
        assert queues[delivered["queue"]] == url
    assert await h.depth(h.settings.inbound_queue(SENDER)) == 0


async def test_a_stopping_replica_answers_and_its_reply_goes_to_the_instance_queue(
    harness_factory: Any, replica_factory: Any, redis_keys: str
) -> None:
    h = await harness_factory(state_url=redis_keys)
    doomed = await replica_factory(h)
    await h.add_fault(kind="latency", delay=1500, interaction_id=SCR_REPLY)
    message_id = new_id()
    held = asyncio.create_task(post(h, doomed.url, message_id=message_id))
    await until(lambda: bool(h.events_for(Event.MESSAGE_AWAITING_REPLY, message_id)), what="held")
    await doomed.stop()
    status, text, _ = await held
    assert status == 500
    assert "this outbound MHS is stopping" in text
    reply = await h.take(h.settings.inbound_queue(SENDER))
    assert reply.message_id == message_id
    assert reply.headers["interaction-id"] == SCR_REPLY
    assert not h.events_for(Event.INBOUND_REPLY_REROUTED, message_id)


async def test_a_dead_replicas_reply_queue_is_not_a_dead_end(
    harness_factory: Any, rabbitmq_url: str, redis_keys: str, unique: str
) -> None:
    h = await harness_factory(state_url=redis_keys, sync_async_timeout_s=1.0)
    # A replica that registered a held request and then died: its consumer is gone (its
    # connection closed), its queue and its registration are still there.
    link = create_broker(rabbitmq_url, connection_name=f"test-{unique}-dead-replica")
    await link.start()
    store = create_state_store(redis_keys, prefix=h.settings.queue_prefix)
    await store.start()
    dead = Replies(h.settings, link, store, get_logger("outbound"))
    await dead.start()
    message_id = new_id()
    await store.put(
        waiting_name(message_id), dead.queue.encode(), ttl_s=dead.timings.registration_s
    )
    await link.stop()
    try:
        # Sent without waiting, so only the dead replica is registered for the reply.
        status, _, _ = await post(h, h.url("outbound"), message_id=message_id, wait=False)
        assert status == 202
        reply = await h.take(h.settings.inbound_queue(SENDER), within_s=30)
    finally:
        await store.stop()
    assert reply.message_id == message_id
    assert reply.headers["interaction-id"] == SCR_REPLY
    [delivered] = h.events_for(Event.INBOUND_DELIVERED, message_id)
    assert delivered["queue"] == dead.queue
    [forwarded] = h.events_for(Event.MESSAGE_REPLY_FORWARDED, message_id)
    assert forwarded["outcome"] == "delivered"
    assert forwarded["queue"] == h.settings.inbound_queue(SENDER)


async def test_a_reply_queue_that_is_gone_reroutes_the_reply(
    harness_factory: Any, redis_keys: str
) -> None:
    h = await harness_factory(state_url=redis_keys)
    message_id = new_id()
    store = create_state_store(redis_keys, prefix=h.settings.queue_prefix)
    await store.start()
    gone = h.settings.reply_queue("gone0000gone")
    try:
        await store.put(waiting_name(message_id), gone.encode(), ttl_s=30)
        status, _, _ = await post(h, h.url("outbound"), message_id=message_id, wait=False)
        assert status == 202
        reply = await h.take(h.settings.inbound_queue(SENDER))
    finally:
        await store.stop()
    assert reply.message_id == message_id
    # The reply is express (no duplicate elimination, two retries): on a loaded machine the
    # proxy's 2 s wait for the inbound MHS can run out and Spine sends it again, and each
    # copy is rerouted. Every reroute must name the gone queue and why.
    rerouted = await h.logged(Event.INBOUND_REPLY_REROUTED, message_id)
    assert {(e["queue"], "unroutable" in e["reason"]) for e in rerouted} == {(gone, True)}


async def test_waiting_is_only_for_sync_async_interactions(harness_factory: Any) -> None:
    h = await harness_factory(["outbound"])
    status, text, _ = await post(
        h,
        h.url("outbound"),
        message_id=new_id(),
        interaction="RCMR_IN010000UK05",
        headers={"ods-code": "A80002"},
    )
    assert (status, text) == (
        400,
        "400: wait-for-response: true is not supported for RCMR_IN010000UK05",
    )
    assert await h.depth(h.settings.outbound_queue) == 0


async def test_a_message_id_already_held_is_refused(harness_factory: Any) -> None:
    h = await harness_factory(sync_async_timeout_s=3.0)
    await h.add_fault(kind="latency", delay=1000, interaction_id=SCR_REPLY)
    message_id = new_id()
    first = asyncio.create_task(post(h, h.url("outbound"), message_id=message_id))
    await until(lambda: bool(h.events_for(Event.MESSAGE_AWAITING_REPLY, message_id)), what="held")
    status, text, _ = await post(h, h.url("outbound"), message_id=message_id)
    assert status == 409
    assert text == (
        f"409: a request for message {message_id} is already waiting for its reply; "
        "nothing was sent again"
    )
    status, text, _ = await first
    assert status == 200, text
    assert len(h.events_for(Event.MESSAGE_QUEUED, message_id)) == 1


async def test_no_ods_code_means_spine_and_spine_receives_only_its_services(
    harness_factory: Any,
) -> None:
    h = await harness_factory(["outbound"])
    status, text, _ = await post(
        h, h.url("outbound"), message_id=new_id(), interaction="RCMR_IN010000UK05", wait=False
    )
    assert status == 400
    assert text == (
        "400: ods-code header (the recipient's ODS code) required: without it the recipient is "
        "Spine (YES), which does not receive RCMR_IN010000UK05"
    )
    message_id = new_id()
    status, _, _ = await post(h, h.url("outbound"), message_id=message_id, wait=False)
    assert status == 202
    [queued] = h.events_for(Event.MESSAGE_QUEUED, message_id)
    assert (queued["to_asid"], queued["to_ods"]) == (SPINE, "YES")
    assert queued["interaction_id"] == SCR_QUERY


async def test_an_outbound_mhs_not_consuming_its_reply_queue_is_not_ready(
    harness_factory: Any, replica_factory: Any
) -> None:
    h = await harness_factory(["outbound"])
    replica = await replica_factory(h)

    async def readyz() -> tuple[int, Any]:
        async with h.http.get(replica.url + "/readyz") as response:
            return response.status, await response.json()

    assert (await readyz())[0] == 200
    # Deleting its queue makes RabbitMQ cancel the replica's consumer.
    await h.broker.delete_queue(replica.reply_queue)
    answers: list[tuple[int, Any]] = []

    async def not_ready() -> bool:
        answers.append(await readyz())
        return answers[-1][0] == 503

    deadline = asyncio.get_running_loop().time() + 20
    while not await not_ready():
        assert asyncio.get_running_loop().time() < deadline, answers[-1]
        await asyncio.sleep(0.02)
    assert answers[-1][1]["problems"] == ["not consuming the reply queues"]


async def test_spine_acknowledges_a_reliable_message_and_sends_no_reply_it_has_none(
    harness_factory: Any,
) -> None:
    h = await harness_factory()
    message_id = new_id()
    # An e-RS message to Spine: forward-reliable, acknowledged, answered by no message.
    status, _, _ = await post(
        h, h.url("outbound"), message_id=message_id, interaction="PRSC_IN080000UK07", wait=False
    )
    assert status == 202
    await until(lambda: bool(h.events_for(Event.DELIVERY_DELIVERED, message_id)), what="delivered")
    [answered] = h.events_for(Event.PROXY_ANSWERED_AS_SPINE, message_id)
    assert answered["status"] == 200  # an ebXML Acknowledgment, as AckRequested asks
    [attempt] = h.events_for(Event.DELIVERY_ATTEMPT, message_id)
    assert (attempt["outcome"], attempt["status"]) == ("accepted", 200)
    assert not h.events_for(Event.PROXY_REPLY_SENT, message_id)
    assert not h.events_for(Event.PROXY_FORWARDED, message_id)


async def test_an_scr_upload_is_answered_with_spines_application_acknowledgement(
    harness_factory: Any,
) -> None:
    h = await harness_factory()
    message_id = new_id()
    status, text, _ = await post(
        h, h.url("outbound"), message_id=message_id, interaction="REPC_IN150016UK05"
    )
    assert status == 200, text
    hl7 = etree.fromstring(text.encode())
    assert hl7.tag == "{urn:hl7-org:v3}MCCI_IN010000UK13"
    details = hl7.xpath(
        "hl7:acknowledgement/hl7:acknowledgementDetail/hl7:code/@displayName", namespaces=NS
    )
    assert details == ["GP Summary upload successful"]
    assert hl7.xpath("hl7:acknowledgement/@typeCode", namespaces=NS) == ["AA"]
    assert hl7.xpath("hl7:acknowledgement/hl7:messageRef/hl7:id/@root", namespaces=NS) == [
        message_id
    ]
