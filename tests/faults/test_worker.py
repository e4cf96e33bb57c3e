"""Delivery workers under failure, roles in one process on the real RabbitMQ: where retries
wait, how attempts are counted, expiry, and a graceful stop."""

from __future__ import annotations

import time

import orjson
import pytest

from mhs.broker import OutgoingMessage
from mhs.chaos.tap import Tap, TapFaults
from mhs.ebxml import classify_reply
from mhs.ids import new_id
from mhs.observe.events import Event
from mhs.roles.worker import WORKER
from tests.broker.support import eventually
from tests.roles.conftest import Harness

from .conftest import GP2GP_REQUEST, RECIPIENT, SENDER, HarnessMaker, record, topology_with

pytestmark = pytest.mark.rabbitmq


async def test_a_long_wait_happens_in_a_delay_queue_not_in_a_worker(harness: HarnessMaker) -> None:
    h = await harness(directory=topology_with(retry_interval="PT1.5S", retries=3))
    await h.add_fault(kind="http-status", status=503, attempts=2, from_asid=SENDER)
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
    delay_queue = h.settings.delay_queue(1500)
    worker = h.cluster.running[[r.role for r in h.cluster.running].index("worker")]
    # While it waits, the message is in the delay queue and no worker holds it.
    await eventually(lambda: _depth(h, delay_queue, 1))
    assert worker.runner.app[WORKER].in_flight == 0
    assert await h.depth(h.settings.outbound_queue) == 0

    delivery = await h.take(h.settings.inbound_queue(RECIPIENT), within_s=20)
    assert delivery.message_id == message_id
    assert delivery.headers["mhs-attempt"] == 3
    scheduled = h.events_for(Event.DELIVERY_RETRY_SCHEDULED, message_id)
    assert [(e["attempt"], e["queue"], e["wait_ms"]) for e in scheduled] == [
        (1, delay_queue, 1500),
        (2, delay_queue, 1500),
    ]
    await h.logged(Event.DELIVERY_DELIVERED, message_id)
    attempts = h.events_for(Event.DELIVERY_ATTEMPT, message_id)
    assert [e["attempt"] for e in attempts] == [1, 2, 3]
    assert await h.depth(h.settings.dead_letter_queue) == 0
    assert await h.depth(delay_queue) == 0


async def _depth(h: Harness, queue: str, depth: int) -> bool:
    return await h.depth(queue) == depth


async def test_the_attempt_count_travels_with_the_message(harness: HarnessMaker) -> None:
    h = await harness()
    resumed, exhausted = new_id(), new_id()
    for message_id, attempts in ((resumed, 1), (exhausted, 3)):
        body = record(h.directory, message_id).model_dump_json().encode()
        await h.broker.publish(
            h.settings.outbound_queue,
            OutgoingMessage(
                body=body,
                message_id=message_id,
                headers={"x-mhs-attempts": attempts, "x-mhs-last-error": "HTTP 503"},
            ),
        )
    # One attempt made before: this is the second (and retries=2 allows three).
    delivery = await h.take(h.settings.inbound_queue(RECIPIENT))
    # Once seen (CI, a loaded machine): attempt 3 arrived. If it comes back, say why: a
    # transient first attempt, or a redelivery counted as one more attempt (resumed).
    steps = [
        (e["event"], e.get("attempt"), e.get("outcome"), e.get("reason"))
        for e in h.events_for(Event.DELIVERY_ATTEMPT, resumed)
        + h.events_for(Event.DELIVERY_RESUMED, resumed)
    ]
    assert (delivery.message_id, delivery.headers["mhs-attempt"]) == (resumed, 2), steps
    # Three made before: none is left, so it is dead-lettered without another send.
    notice = await h.take(h.settings.inbound_queue(SENDER))
    assert notice.message_id == exhausted
    assert notice.headers["mhs-outcome"] == "dead-lettered"
    assert notice.headers["mhs-reason"] == "retries exhausted after 3 attempts: HTTP 503"
    assert not h.events_for(Event.DELIVERY_ATTEMPT, exhausted)


async def test_in_attempts_mode_the_count_includes_the_first_send(harness: HarnessMaker) -> None:
    h = await harness(retry_count_mode="attempts")
    await h.add_fault(kind="soap-fault", code="206", from_asid=SENDER)
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
    dead = await h.take(h.settings.dead_letter_queue)
    assert dead.headers["x-mhs-attempts"] == 2  # retries=2 sends in all
    assert len(h.events_for(Event.DELIVERY_ATTEMPT, message_id)) == 2


async def test_a_message_expires_with_its_persist_duration_and_the_sender_is_told(
    harness: HarnessMaker,
) -> None:
    directory = topology_with(retries=50, retry_interval="PT0.4S", persist_duration="PT2S")
    h = await harness(directory=directory)
    await h.add_fault(kind="http-status", status=500, from_asid=SENDER)
    message_id = new_id()
    before = time.time()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202

    notice = await h.take(h.settings.inbound_queue(SENDER), within_s=15)
    assert notice.message_id == message_id
    assert notice.headers["mhs-outcome"] == "expired"
    assert str(notice.headers["mhs-reason"]).startswith(
        "persist duration ends before the next retry after"
    )
    reply = classify_reply("text/xml", orjson.loads(notice.body)["ebXML"].encode())
    assert reply.kind == "message-error"
    assert reply.errors[0].code == "TimeToLiveExpired"

    dead = await h.take(h.settings.dead_letter_queue)
    headers = dead.headers
    assert headers["x-mhs-outcome"] == "expired"
    attempts = headers["x-mhs-attempts"]
    assert isinstance(attempts, int)
    assert 3 <= attempts < 50
    assert "HTTP 500" in str(headers["x-mhs-last-error"])
    times = [
        headers[f"x-mhs-{name}-at-ms"]
        for name in ("accepted", "first-attempt", "last-attempt", "dead-lettered")
    ]
    assert all(isinstance(t, int) for t in times)
    accepted, first, last, dead_at = (int(t or 0) for t in times)
    assert round(before * 1000) <= accepted <= first < last <= dead_at <= time.time() * 1000
    # The original headers and body are kept.
    assert headers["interaction-id"] == GP2GP_REQUEST
    assert headers["from-asid"] == SENDER
    assert orjson.loads(dead.body)["message_id"] == message_id
    assert await h.depth(h.settings.inbound_queue(RECIPIENT)) == 0


async def test_a_message_already_past_its_persist_duration_is_never_sent(
    harness: HarnessMaker,
) -> None:
    h = await harness()
    message_id = new_id()
    old = record(h.directory, message_id, accepted_at=time.time() - 3600)
    await h.broker.publish(
        h.settings.outbound_queue,
        OutgoingMessage(body=old.model_dump_json().encode(), message_id=message_id),
    )
    notice = await h.take(h.settings.inbound_queue(SENDER))
    assert notice.headers["mhs-outcome"] == "expired"
    assert notice.headers["mhs-reason"] == "persist duration passed after 0 attempts: never sent"
    assert not h.events_for(Event.DELIVERY_ATTEMPT, message_id)


async def _slow_path(harness: HarnessMaker, *, latency_s: float) -> tuple[Harness, Harness, Tap]:
    """An inbound MHS behind a slow network, and the other roles (in their own cluster,
    with the harness's shutdown timeout of 3 s)."""
    inbound = await harness(["inbound"])
    tap = Tap([inbound.url("inbound")])
    await tap.start()
    tap.faults = TapFaults(latency_s=latency_s)
    rest = await harness(
        ["spine-proxy", "worker", "outbound"],
        endpoint_overrides={"datacentre": tap.url + "/reliablemessaging"},
    )
    assert rest.settings.shutdown_timeout_s == 3.0
    return inbound, rest, tap


async def test_a_graceful_stop_lets_in_flight_deliveries_finish(harness: HarnessMaker) -> None:
    inbound, rest, tap = await _slow_path(harness, latency_s=1.0)
    try:
        message_id = new_id()
        assert (await rest.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
        await eventually(lambda: tap.counts["received"] == 1)
        await rest.cluster.stop()  # SIGTERM's path: outbound, then the worker drains
        drained = rest.events(Event.WORKER_DRAINED)
        assert [(e["in_flight"], e["handed_back"]) for e in drained] == [(1, 0)]
        assert rest.events_for(Event.DELIVERY_DELIVERED, message_id)
        delivery = await inbound.take(inbound.settings.inbound_queue(RECIPIENT))
        assert delivery.message_id == message_id
        assert await inbound.depth(inbound.settings.outbound_queue) == 0
    finally:
        await tap.stop()


async def test_work_outliving_the_shutdown_timeout_goes_back_to_the_queue(
    harness: HarnessMaker,
) -> None:
    inbound, rest, tap = await _slow_path(harness, latency_s=4.5)
    try:
        message_id = new_id()
        assert (await rest.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
        await eventually(lambda: tap.counts["received"] == 1)
        await rest.cluster.stop()
        drained = rest.events(Event.WORKER_DRAINED)
        assert [(e["in_flight"], e["handed_back"]) for e in drained] == [(1, 1)]
        assert not rest.events_for(Event.DELIVERY_DELIVERED, message_id)
        await eventually(lambda: _depth(inbound, inbound.settings.outbound_queue, 1))

        # The next worker counts the attempt that was in flight, and the message arrives
        # once although the first copy also went on through the slow network.
        tap.faults = TapFaults()
        later = await harness(
            ["spine-proxy", "worker"],
            endpoint_overrides={"datacentre": tap.url + "/reliablemessaging"},
        )
        delivery = await inbound.take(inbound.settings.inbound_queue(RECIPIENT), within_s=15)
        assert delivery.message_id == message_id
        resumed = later.events_for(Event.DELIVERY_RESUMED, message_id)
        assert [e["attempt"] for e in resumed] == [1]
        # The first copy reaches inbound too (before or after): it is not delivered again.
        await eventually(
            lambda: len(inbound.events_for(Event.INBOUND_RECEIVED, message_id)) == 2,
            within_s=10,
        )
        assert len(inbound.events_for(Event.INBOUND_DUPLICATE, message_id)) == 1
        assert await inbound.depth(inbound.settings.inbound_queue(RECIPIENT)) == 0
    finally:
        await tap.stop()
