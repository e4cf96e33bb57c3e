"""A publish whose confirm is lost (issue 13), made deterministic: RabbitMQ queues the
message, and the connection drops before its basic.ack gets back to the role. The
message must never be treated as lost without a trace: a later copy of it that is
delivered carries ``mhs-possible-duplicate: true``, and no copy goes out unflagged twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from prometheus_client import generate_latest

from mhs.broker import Delivery, OutgoingMessage
from mhs.chaos.confirm_loss import ConfirmLosingLink
from mhs.ids import new_id
from mhs.messages.instance import POSSIBLE_DUPLICATE
from mhs.observe.events import Event
from mhs.observe.metrics import RoleMetrics
from tests.broker.support import eventually
from tests.roles.conftest import Harness

from .conftest import RECIPIENT, SENDER, HarnessMaker, ebxml

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis]


@pytest.fixture
async def link(rabbitmq_url: str) -> AsyncIterator[tuple[ConfirmLosingLink, str]]:
    """The confirm-losing link in front of RabbitMQ, and the broker URL through it."""
    parts = urlsplit(rabbitmq_url)
    forwarder = ConfirmLosingLink(parts.hostname or "127.0.0.1", parts.port or 5672)
    await forwarder.up()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{forwarder.port}"
    yield forwarder, urlunsplit(parts._replace(netloc=netloc))
    await forwarder.cut()


async def post(h: Harness, body: bytes, content_type: str) -> tuple[int, bytes]:
    async with h.http.post(
        h.url("inbound") + "/reliablemessaging",
        data=body,
        headers={"Content-Type": content_type, "Ssp-From": SENDER},
    ) as response:
        return response.status, await response.read()


async def retried_until_accepted(h: Harness, body: bytes, content_type: str) -> int:
    """Spine's retries: the role's broker link comes back a moment after the cut."""
    statuses: list[int] = []

    async def accepted() -> bool:
        statuses.append((await post(h, body, content_type))[0])
        return statuses[-1] == 200

    await eventually(accepted, within_s=20)
    return len(statuses)


async def everything_on(h: Harness, queue: str) -> list[Delivery]:
    found = [await h.take(queue)]
    while await h.depth(queue):
        found.append(await h.take(queue))
    return found


def flags(deliveries: list[Delivery]) -> list[object]:
    return [d.headers.get(POSSIBLE_DUPLICATE) for d in deliveries]


@pytest.mark.parametrize("duplicate_elimination", [True, False])
async def test_a_copy_sent_after_a_lost_confirm_is_delivered_flagged(
    harness: HarnessMaker,
    redis_url: str,
    link: tuple[ConfirmLosingLink, str],
    duplicate_elimination: bool,
) -> None:
    forwarder, broker_url = link
    h = await harness(["inbound"], state_url=redis_url, broker_url=broker_url)
    queue = h.settings.inbound_queue(RECIPIENT)
    await h.depth(queue)  # declared, so the publish is routed and confirmed
    message_id = new_id()
    request = ebxml(message_id, duplicate_elimination=duplicate_elimination)
    forwarder.arm(queue)
    status, body = await post(h, *request)
    assert (status, forwarder.lost) == (500, 1), body
    (unconfirmed,) = h.events_for(Event.INBOUND_PUBLISH_UNCONFIRMED, message_id)
    assert unconfirmed["marked"] is True
    assert "may have been queued" in unconfirmed["reason"]
    await retried_until_accepted(h, *request)
    delivered = await everything_on(h, queue)
    # The first copy landed (RabbitMQ acked it); the retry went out flagged, same id.
    assert [d.message_id for d in delivered] == [message_id, message_id]
    assert flags(delivered) == [None, True]
    assert len(h.events_for(Event.INBOUND_POSSIBLE_DUPLICATE, message_id)) == 1
    if duplicate_elimination:
        # Settled now: a further copy is acknowledged and not delivered at all.
        assert (await post(h, *request))[0] == 200
        assert await h.depth(queue) == 0
    # The role's metrics move with these events (captured here, so counted here).
    figures = RoleMetrics("inbound")
    for event in h.logs:
        figures.observe(event)
    text = generate_latest(figures.registry).decode()
    assert "mhs_publishes_unconfirmed_total 1.0" in text
    assert 'mhs_inbound_possible_duplicates_total{interaction_id="RCMR_IN010000UK05"} 1.0' in text


async def test_a_publish_that_certainly_failed_lets_the_next_copy_through_unflagged(
    harness: HarnessMaker, redis_url: str, link: tuple[ConfirmLosingLink, str]
) -> None:
    forwarder, broker_url = link
    h = await harness(["inbound"], state_url=redis_url, broker_url=broker_url)
    queue = h.settings.inbound_queue(RECIPIENT)
    await h.depth(queue)
    await forwarder.cut()  # nothing can be written: the publish certainly did not land
    message_id = new_id()
    assert (await post(h, *ebxml(message_id)))[0] == 500
    assert not h.events_for(Event.INBOUND_PUBLISH_UNCONFIRMED, message_id)
    await forwarder.up()
    await retried_until_accepted(h, *ebxml(message_id))
    assert flags(await everything_on(h, queue)) == [None]


async def test_a_lost_confirm_at_the_outbound_mhs_ends_in_one_delivery(
    harness: HarnessMaker, redis_url: str, link: tuple[ConfirmLosingLink, str]
) -> None:
    """The caller hears the message may be queued and sends it again with its Message-Id:
    both copies go to Spine, and the receiving MHS's duplicate elimination drops one. The
    id is marked uncertain, so what an inbound MHS on the same store delivers of it (here,
    a copy without duplicate elimination) is flagged."""
    forwarder, broker_url = link
    h = await harness(state_url=redis_url, broker_url=broker_url)
    message_id = new_id()
    forwarder.arm(h.settings.outbound_queue)
    first = await h.send(SENDER, ods_code="A80002", message_id=message_id)
    assert (first.status, forwarder.lost) == (503, 1)
    assert "may have been queued" in await first.text()
    (unconfirmed,) = h.events_for(Event.MESSAGE_PUBLISH_UNCONFIRMED, message_id)
    assert unconfirmed["marked"] is True
    assert not h.events_for(Event.MESSAGE_REFUSED, message_id)

    async def accepted() -> bool:
        return (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202

    await eventually(accepted, within_s=20)
    queue = h.settings.inbound_queue(RECIPIENT)
    assert (await h.take(queue, within_s=20)).message_id == message_id
    await h.logged(Event.INBOUND_DUPLICATE, message_id)
    assert await h.depth(queue) == 0
    assert (await post(h, *ebxml(message_id, duplicate_elimination=False)))[0] == 200
    assert flags(await everything_on(h, queue)) == [True]


async def test_a_reply_forwarded_again_after_a_lost_confirm_is_flagged(
    harness: HarnessMaker, link: tuple[ConfirmLosingLink, str]
) -> None:
    """A reply nobody waits for goes on to its instance's queue from the unclaimed-replies
    queue; after a lost confirm it comes back redelivered and goes on again, flagged."""
    forwarder, broker_url = link
    h = await harness(["outbound"], broker_url=broker_url)
    queue = h.settings.inbound_queue(RECIPIENT)
    await h.depth(queue)
    forwarder.arm(queue)
    message_id = new_id()
    reply = OutgoingMessage(body=b"{}", message_id=message_id, headers={"to-asid": RECIPIENT})
    await h.broker.publish(h.settings.unclaimed_replies_queue, reply)
    await eventually(lambda: forwarder.lost == 1, within_s=10)
    delivered = [await h.take(queue, within_s=20)]
    delivered.append(await h.take(queue, within_s=20))
    assert [d.message_id for d in delivered] == [message_id, message_id]
    assert flags(delivered) == [None, True]
    assert await h.depth(queue) == 0
