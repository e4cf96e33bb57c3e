"""Duplicate elimination across inbound replicas and restarts, on the real Redis: the
same message id is delivered once, acknowledged alike, and never silently dropped."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from mhs.ebxml import classify_reply
from mhs.ids import new_id
from mhs.observe.events import Event
from mhs.roles.common import BROKER
from mhs.state import StateStore, create_state_store
from tests.broker.support import eventually
from tests.roles.conftest import Harness

from .conftest import RECIPIENT, HarnessMaker, ebxml
from .network import Link

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis]


async def post(h: Harness, body: bytes, content_type: str) -> tuple[int, bytes, dict[str, str]]:
    async with h.http.post(
        h.url("inbound") + "/reliablemessaging",
        data=body,
        headers={"Content-Type": content_type, "Ssp-From": "918000000001"},
    ) as response:
        return response.status, await response.read(), dict(response.headers)


async def post_until_answered(
    h: Harness, body: bytes, content_type: str
) -> tuple[int, bytes, dict[str, str]]:
    """``post``, sent again after each 503 (within 5 s), as a sender that honours it."""
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        answer = await post(h, body, content_type)
        if answer[0] != 503 or asyncio.get_running_loop().time() > deadline:
            return answer
        await asyncio.sleep(0.02)


async def replicas(
    harness: HarnessMaker, redis_url: str, count: int = 2, **settings: object
) -> list[Harness]:
    return [await harness(["inbound"], state_url=redis_url, **settings) for _ in range(count)]


async def test_copies_at_two_replicas_at_once_are_delivered_once(
    harness: HarnessMaker, redis_url: str
) -> None:
    a, b = await replicas(harness, redis_url)
    ids = [new_id() for _ in range(20)]
    answers = await asyncio.gather(
        *(post(replica, *ebxml(message_id)) for message_id in ids for replica in (a, b))
    )
    for first, second in zip(answers[::2], answers[1::2], strict=True):
        statuses = sorted((first[0], second[0]))
        # One delivered it; the other found it done (the same ack) or in progress (503).
        assert statuses in ([200, 200], [200, 503])
        acks = [body for status, body, _ in (first, second) if status == 200]
        assert all(classify_reply("text/xml", body).kind == "acknowledgment" for body in acks)
        assert len(set(acks)) == 1
        retry = [headers for status, _, headers in (first, second) if status == 503]
        assert all(headers["Retry-After"] == "1" for headers in retry)
    delivered = [await a.take(a.settings.inbound_queue(RECIPIENT)) for _ in ids]
    assert sorted(d.message_id or "" for d in delivered) == sorted(ids)
    assert await a.depth(a.settings.inbound_queue(RECIPIENT)) == 0


async def test_a_duplicate_gets_the_same_acknowledgment_from_any_replica_and_after_a_restart(
    harness: HarnessMaker, redis_url: str
) -> None:
    a, b = await replicas(harness, redis_url)
    message_id = new_id()
    request = ebxml(message_id)
    status, first_ack, _ = await post(a, *request)
    assert status == 200
    # Replica a writes its settlement behind its answer: until it lands, b finds the claim
    # pending and asks for a retry (503), as Spine then does.
    assert (await post_until_answered(b, *request))[:2] == (200, first_ack)
    await a.cluster.stop()
    (restarted,) = await replicas(harness, redis_url, count=1)
    assert (await post(restarted, *request))[:2] == (200, first_ack)
    await b.take(b.settings.inbound_queue(RECIPIENT))
    assert await b.depth(b.settings.inbound_queue(RECIPIENT)) == 0
    dropped = [e for e in b.events(Event.INBOUND_DUPLICATE) if e["message_id"] == message_id]
    assert len(dropped) == 2


async def test_a_claim_left_by_a_crashed_replica_asks_for_a_retry_until_it_expires(
    harness: HarnessMaker, redis_url: str
) -> None:
    (a,) = await replicas(harness, redis_url, count=1, dedup_pending_ttl_s=1.0)
    message_id = new_id()
    crashed = create_state_store(redis_url, prefix=a.settings.queue_prefix)
    await crashed.start()
    try:
        # What a replica that died between claiming and publishing leaves behind.
        claim = await crashed.claim(f"dedup:{message_id}", owner="crashed", ttl_s=1.0)
        assert claim.won
        status, body, headers = await post(a, *ebxml(message_id))
        assert (status, headers["Retry-After"]) == (503, "1")
        assert b"being delivered; send it again later" in body
        assert await a.depth(a.settings.inbound_queue(RECIPIENT)) == 0
        in_progress = a.events(Event.INBOUND_DUPLICATE_IN_PROGRESS)
        assert [e["status"] for e in in_progress] == [503]
        await eventually(lambda: _gone(crashed, f"dedup:{message_id}"))
    finally:
        await crashed.stop()
    assert (await post(a, *ebxml(message_id)))[0] == 200
    assert (await a.take(a.settings.inbound_queue(RECIPIENT))).message_id == message_id


async def test_a_failed_publish_lets_the_next_copy_through(
    harness: HarnessMaker, redis_url: str
) -> None:
    (a,) = await replicas(harness, redis_url, count=1)
    message_id = new_id()
    broker = a.cluster.running[0].runner.app[BROKER]
    await broker.stop()
    status, body, _ = await post(a, *ebxml(message_id))
    assert status == 500
    assert b"could not be queued; send it again" in body
    await broker.start()
    assert (await post(a, *ebxml(message_id)))[0] == 200
    assert (await a.take(a.settings.inbound_queue(RECIPIENT))).message_id == message_id
    assert await a.depth(a.settings.inbound_queue(RECIPIENT)) == 0


async def test_without_its_state_store_inbound_refuses_with_a_retriable_answer(
    harness: HarnessMaker, redis_url: str
) -> None:
    parts = urlsplit(redis_url)
    link = Link(parts.hostname or "127.0.0.1", parts.port or 6379)
    await link.up()
    (a,) = await replicas(harness, f"redis://127.0.0.1:{link.port}/0", count=1)
    await link.cut()
    message_id = new_id()
    status, body, headers = await post(a, *ebxml(message_id))
    assert (status, headers["Retry-After"]) == (503, "1")
    assert b"duplicate elimination is not available" in body
    assert await a.depth(a.settings.inbound_queue(RECIPIENT)) == 0
    async with a.http.get(a.url("inbound") + "/readyz") as response:
        assert response.status == 503
        assert "state store not answering" in (await response.json())["problems"]
    await link.up()
    await eventually(lambda: ready(a), within_s=10)
    assert (await post(a, *ebxml(message_id)))[0] == 200
    assert (await a.take(a.settings.inbound_queue(RECIPIENT))).message_id == message_id
    await link.cut()


async def _gone(store: StateStore, name: str) -> bool:
    return await store.remaining_s(name) is None


async def ready(h: Harness) -> bool:
    async with h.http.get(h.url("inbound") + "/readyz") as response:
        return response.status == 200
