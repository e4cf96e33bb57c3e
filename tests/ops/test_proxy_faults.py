"""Fault control on the Spine proxy, through every real role on RabbitMQ."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from mhs.broker import Delivery
from mhs.ebxml import classify_reply
from mhs.ids import new_id
from mhs.messages.records import OutboundRecord
from mhs.observe.events import Event
from mhs.spine.requests import spine_request
from tests.roles.conftest import HL7, Harness

pytestmark = pytest.mark.rabbitmq

SENDER = "918000000001"  # A80001
RECIPIENT = "918000000002"  # A80002, shares data with A80001
GP2GP = "RCMR_IN010000UK05"


async def set_fault(h: Harness, rule: dict[str, Any], expect: int = 201) -> dict[str, Any]:
    async with h.http.post(h.url("spine-proxy") + "/_admin/faults", json=rule) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == expect, body
        return body


async def clear_faults(h: Harness) -> None:
    async with h.http.delete(h.url("spine-proxy") + "/_admin/faults") as response:
        assert response.status == 204


async def send(h: Harness) -> str:
    message_id = new_id()
    response = await h.send(SENDER, ods_code="A80002", message_id=message_id)
    assert response.status == 202
    return message_id


async def delivered(h: Harness, message_id: str, within_s: float = 30) -> Delivery:
    """The message from its recipient's queue, once the worker has logged it delivered.

    The inbound MHS publishes before its acknowledgment travels back to the worker, so the
    message can be on the queue before the worker's last attempt is in the log.
    """
    delivery = await h.take(h.settings.inbound_queue(RECIPIENT), within_s=within_s)
    assert delivery.message_id == message_id
    await h.logged(Event.DELIVERY_DELIVERED, message_id)
    return delivery


def attempts(h: Harness, message_id: str) -> list[tuple[int, str]]:
    return [(e["attempt"], e["outcome"]) for e in h.events_for(Event.DELIVERY_ATTEMPT, message_id)]


def why(h: Harness, message_id: str) -> list[tuple[str, object]]:
    """Each attempt's outcome and reason, for an assertion's message."""
    return [
        (e["outcome"], e.get("reason")) for e in h.events_for(Event.DELIVERY_ATTEMPT, message_id)
    ]


async def test_added_latency_delays_the_answer_then_delivers(harness_factory: Any) -> None:
    h = await harness_factory()
    await set_fault(h, {"kind": "latency", "delay": {"ms": 300}, "from_asid": SENDER})
    message_id = await send(h)
    await delivered(h, message_id)
    injected = h.events_for(Event.PROXY_FAULT_INJECTED, message_id)
    assert [(e["kind"], e["delay_ms"], e["attempt"]) for e in injected] == [("latency", 300, 1)]
    [attempt] = h.events_for(Event.DELIVERY_ATTEMPT, message_id)
    assert attempt["outcome"] == "accepted"
    assert attempt["duration_ms"] >= 300  # the worker waited for the delayed answer


@pytest.mark.parametrize(
    ("rule", "status"),
    [
        ({"kind": "http-status", "status": 500}, 500),
        ({"kind": "http-status", "status": 503}, 503),
        ({"kind": "soap-fault", "code": "200"}, 500),
        ({"kind": "soap-fault", "code": "206"}, 500),
        ({"kind": "soap-fault", "code": "208"}, 500),
    ],
    ids=["500", "503", "soap-200", "soap-206", "soap-208"],
)
async def test_retriable_answers_are_retried_until_the_fault_lets_go(
    harness_factory: Any, rule: dict[str, Any], status: int
) -> None:
    h = await harness_factory()
    await set_fault(h, {**rule, "attempts": 2, "to_asid": RECIPIENT, "interaction_id": GP2GP})
    message_id = await send(h)
    delivery = await delivered(h, message_id)
    assert delivery.headers["mhs-attempt"] == 3
    assert attempts(h, message_id) == [(1, "transient"), (2, "transient"), (3, "accepted")]
    injected = h.events_for(Event.PROXY_FAULT_INJECTED, message_id)
    assert [(e["kind"], e["status"], e["attempt"]) for e in injected] == [
        (rule["kind"], status, 1),
        (rule["kind"], status, 2),
    ]
    assert len(h.events_for(Event.DELIVERY_RETRY_SCHEDULED, message_id)) == 2


async def test_a_message_error_is_final_and_the_sender_is_told(harness_factory: Any) -> None:
    h = await harness_factory()
    await set_fault(h, {"kind": "message-error", "code": "501319:Unknown eb:CPAId"})
    message_id = await send(h)
    notice = await h.take(h.settings.inbound_queue(SENDER))
    assert notice.message_id == message_id
    assert notice.headers["mhs-outcome"] == "rejected"
    assert "501319:Unknown eb:CPAId" in str(notice.headers["mhs-reason"])
    assert attempts(h, message_id) == [(1, "permanent")]
    assert await h.depth(h.settings.inbound_queue(RECIPIENT)) == 0


async def test_a_timeout_makes_the_worker_give_up_and_retry(harness_factory: Any) -> None:
    h = await harness_factory()
    await set_fault(h, {"kind": "timeout", "attempts": 1})
    message_id = await send(h)
    await delivered(h, message_id)
    first, second = h.events_for(Event.DELIVERY_ATTEMPT, message_id)
    assert (first["outcome"], first["status"]) == ("transient", None)
    assert "Timeout" in first["reason"]
    assert second["outcome"] == "accepted"


@pytest.mark.parametrize("then", ["error", "timeout"])
async def test_a_dropped_acknowledgement_is_retried_and_the_copy_dropped_at_inbound(
    harness_factory: Any, then: str
) -> None:
    h = await harness_factory()
    await set_fault(h, {"kind": "drop-ack", "then": then, "attempts": 1, "from_asid": SENDER})
    message_id = await send(h)
    await delivered(h, message_id)
    await h.logged(Event.INBOUND_DUPLICATE, message_id)
    assert [e["outcome"] for e in h.events_for(Event.DELIVERY_ATTEMPT, message_id)] == [
        "transient",
        "accepted",
    ]
    assert len(h.events_for(Event.PROXY_FORWARDED, message_id)) == 2
    assert len(h.events_for(Event.INBOUND_DELIVERED, message_id)) == 1
    assert await h.depth(h.settings.inbound_queue(RECIPIENT)) == 0  # exactly one copy


async def test_duplicate_forwarding_is_dropped_by_inbound(harness_factory: Any) -> None:
    h = await harness_factory()
    await set_fault(h, {"kind": "duplicate", "copies": 3, "to_asid": RECIPIENT})
    message_id = await send(h)
    await delivered(h, message_id)
    assert attempts(h, message_id) == [(1, "accepted")]
    assert len(h.events_for(Event.PROXY_FORWARDED, message_id)) == 3
    assert len(h.events_for(Event.INBOUND_DUPLICATE, message_id)) == 2
    assert await h.depth(h.settings.inbound_queue(RECIPIENT)) == 0


async def test_rules_only_touch_the_traffic_they_name(harness_factory: Any) -> None:
    h = await harness_factory()
    await set_fault(h, {"kind": "http-status", "status": 500, "from_asid": "918000000003"})
    await set_fault(
        h, {"kind": "http-status", "status": 500, "interaction_id": "MCCI_IN010000UK13"}
    )
    message_id = await send(h)
    await delivered(h, message_id)
    assert attempts(h, message_id) == [(1, "accepted")], why(h, message_id)
    assert not h.events_for(Event.PROXY_FAULT_INJECTED, message_id)


async def test_clearing_restores_normal_behaviour_at_once(harness_factory: Any) -> None:
    h = await harness_factory()
    await set_fault(h, {"kind": "http-status", "status": 503, "from_asid": SENDER})
    stuck = await send(h)
    await h.logged(Event.DELIVERY_RETRY_SCHEDULED, stuck)
    await clear_faults(h)
    fresh = await send(h)
    arrived = {(await h.take(h.settings.inbound_queue(RECIPIENT))).message_id for _ in range(2)}
    assert arrived == {stuck, fresh}
    for message_id in arrived:
        await h.logged(Event.DELIVERY_DELIVERED, message_id)
    assert not h.events_for(Event.PROXY_FAULT_INJECTED, fresh)
    assert attempts(h, fresh) == [(1, "accepted")], why(h, fresh)
    assert attempts(h, stuck)[-1][1] == "accepted"
    changes = [(e["change"], e["active"]) for e in h.events(Event.PROXY_FAULTS_CHANGED)]
    assert changes == [("added", 1), ("cleared", 0)]


def _direct_request(h: Harness) -> tuple[str, str, bytes, dict[str, str]]:
    """An ebXML request as a delivery worker would POST it to the proxy."""
    sender = h.directory.by_asid(SENDER)
    recipient = h.directory.by_asid(RECIPIENT)
    interaction = h.directory.interaction(GP2GP)
    assert sender
    assert recipient
    assert interaction
    message_id = new_id()
    record = OutboundRecord.stamped(
        sender,
        recipient,
        message_id=message_id,
        interaction_id=GP2GP,
        payload=HL7.format(id=message_id),
    )
    request = spine_request(record, interaction, recipient)
    headers = {**request.headers, "Ssp-TraceID": new_id().lower()}
    return message_id, h.url("spine-proxy") + request.path, request.body, headers


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "timeout", "hold_ms": 600_000},
        {"kind": "latency", "delay": {"ms": 600_000}},
        {"kind": "http-status", "status": 500, "delay": 600_000},
        {"kind": "drop-ack", "then": "timeout", "hold_ms": 600_000},
    ],
    ids=["timeout", "latency", "delayed-500", "drop-ack-timeout"],
)
async def test_removing_a_rule_releases_the_requests_it_holds(
    harness_factory: Any, rule: dict[str, Any]
) -> None:
    h = await harness_factory(["inbound", "spine-proxy"])
    installed = await set_fault(h, rule)
    message_id, url, body, headers = _direct_request(h)
    timeout = aiohttp.ClientTimeout(total=100)
    held = asyncio.create_task(h.http.post(url, data=body, headers=headers, timeout=timeout))
    await h.logged(Event.PROXY_FAULT_INJECTED, message_id)
    async with h.http.delete(f"{h.url('spine-proxy')}/_admin/faults/{installed['id']}") as gone:
        assert gone.status == 204
    # Ten minutes of hold would outlast the test's own timeout: the removal let it go.
    async with await held as response:
        assert response.status == 200
        reply = classify_reply(response.content_type, await response.read())
    assert reply.kind == "acknowledgment"
    delivery = await h.take(h.settings.inbound_queue(RECIPIENT))
    assert delivery.message_id == message_id


async def test_the_admin_api_refuses_bad_rules_saying_why(harness_factory: Any) -> None:
    h = await harness_factory(["spine-proxy"])
    admin = h.url("spine-proxy") + "/_admin/faults"
    bad = await set_fault(h, {"kind": "soap-fault", "rate": 2, "from_asid": "1"}, expect=400)
    assert bad["error"] == "invalid fault rule"
    problems = {p["field"]: p["problem"] for p in bad["problems"]}
    assert "less than or equal to 1" in problems["rate"]
    assert "should match pattern" in problems["from_asid"]
    stray = await set_fault(h, {"kind": "soap-fault", "status": 503}, expect=400)
    assert "status does not apply to kind soap-fault" in stray["problems"][0]["problem"]
    async with h.http.post(admin, data=b"{not json") as response:
        assert response.status == 400
        assert "Invalid JSON" in (await response.json())["problems"][0]["problem"]
    await set_fault(h, {"id": "slow", "kind": "latency", "delay": 5})
    conflict = await set_fault(h, {"id": "slow", "kind": "latency", "delay": 9}, expect=409)
    assert "already active" in conflict["error"]
    async with h.http.delete(admin + "/nope") as response:
        assert response.status == 404
        assert "no active fault with id nope" in (await response.json())["error"]
    async with h.http.get(admin) as response:
        listed = await response.json()
    assert listed == [
        {
            "id": "slow",
            "kind": "latency",
            "rate": 1.0,
            "attempts": None,
            "from_asid": None,
            "to_asid": None,
            "interaction_id": None,
            "delay": {"distribution": "fixed", "ms": 5.0},
        }
    ]
