"""GET /messages/{message_id} and `mhs status`: a message's timeline across every role,
visible to its sender and recipient only."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import orjson
import pytest

from mhs.ids import new_id

from .conftest import LiveLogs, events, get_status, timeline

pytestmark = pytest.mark.rabbitmq

SENDER = "918000000001"  # A80001
RECIPIENT = "918000000002"  # A80002, same region: they share data
STRANGER = "918000000009"  # A80009, another region: no agreement with A80001
OUTSIDER = "918000000003"  # A80003: neither sends nor receives these messages
SPINE = "990000000806"


def _done(*needed: str) -> Any:
    return lambda body: set(needed) <= set(events(body))


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_delivered_messages_timeline(
    harness_factory: Any, live_logs: LiveLogs, redis_keys: str, store: str
) -> None:
    h = await harness_factory(state_url=redis_keys if store == "redis" else None)
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
    body = await timeline(
        h,
        message_id,
        SENDER,
        until=_done("inbound.acknowledged", "proxy.forwarded", "delivery.delivered_to_proxy"),
    )
    assert body["message_id"] == message_id
    assert body["interaction_id"] == "RCMR_IN010000UK05"
    assert (body["from_asid"], body["from_ods"]) == (SENDER, "A80001")
    assert (body["to_asid"], body["to_ods"]) == (RECIPIENT, "A80002")
    assert body["state"] == "delivered"
    assert body["truncated"] is False
    steps = body["steps"]
    assert [s["event"] for s in steps[:2]] == ["message.accepted", "message.queued"]
    assert sorted(s["event"] for s in steps[2:]) == [
        "delivery.attempt",
        "delivery.delivered_to_proxy",
        "inbound.acknowledged",
        "inbound.delivered_to_instance",
        "inbound.received",
        "proxy.forwarded",
    ]
    assert [s["at"] for s in steps] == sorted(s["at"] for s in steps)
    by_event = {s["event"]: s for s in steps}
    assert by_event["message.accepted"]["role"] == "outbound"
    assert by_event["delivery.attempt"]["role"] == "worker"
    assert (by_event["delivery.attempt"]["attempt"], by_event["delivery.attempt"]["outcome"]) == (
        1,
        "accepted",
    )
    assert by_event["proxy.forwarded"]["role"] == "spine-proxy"
    delivered = by_event["inbound.delivered_to_instance"]
    assert (delivered["role"], delivered["queue"]) == (
        "inbound",
        h.settings.inbound_queue(RECIPIENT),
    )
    assert steps[0]["at"].endswith("Z")
    # The recipient sees the same timeline.
    status, seen = await get_status(h, message_id, RECIPIENT)
    assert status == 200
    assert seen["steps"][:2] == steps[:2]


async def test_a_retried_messages_timeline_shows_each_attempt(
    harness_factory: Any, live_logs: LiveLogs
) -> None:
    h = await harness_factory()
    async with h.http.post(
        h.url("spine-proxy") + "/_admin/faults",
        json={"kind": "http-status", "status": 503, "attempts": 2, "from_asid": SENDER},
    ) as response:
        assert response.status == 201
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
    body = await timeline(
        h, message_id, SENDER, until=_done("delivery.delivered_to_proxy", "inbound.acknowledged")
    )
    attempts = [s for s in body["steps"] if s["event"] == "delivery.attempt"]
    assert [(s["attempt"], s["outcome"], s["status"]) for s in attempts] == [
        (1, "transient", 503),
        (2, "transient", 503),
        (3, "accepted", 200),
    ]
    retries = [s for s in body["steps"] if s["event"] == "delivery.retry_scheduled"]
    assert [s["attempt"] for s in retries] == [1, 2]
    assert all(s["wait_ms"] > 0 for s in retries)
    faults = [s for s in body["steps"] if s["event"] == "proxy.fault_injected"]
    assert [(s["kind"], s["status"], s["attempt"]) for s in faults] == [
        ("http-status", 503, 1),
        ("http-status", 503, 2),
    ]
    assert body["state"] == "delivered"


async def test_a_rejected_messages_timeline_says_why(
    harness_factory: Any, live_logs: LiveLogs
) -> None:
    h = await harness_factory()
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80009", message_id=message_id)).status == 202
    token = f"FOT_CHECK_FAILED_MESSAGESENDER_{SENDER}_MESSAGERECEIVER_{STRANGER}"
    body = await timeline(h, message_id, SENDER, until=_done("delivery.sender_notified"))
    assert body["state"] == "rejected"
    by_event = {s["event"]: s for s in body["steps"]}
    refused = by_event["proxy.refused"]
    assert (refused["status"], refused["reason"]) == (403, token)
    assert by_event["delivery.attempt"]["outcome"] == "permanent"
    assert by_event["delivery.rejected"]["reason"] == token
    dead = by_event["delivery.dead_lettered"]
    assert (dead["outcome"], dead["reason"], dead["attempt"]) == ("rejected", token, 1)
    assert by_event["delivery.sender_notified"]["queue"] == h.settings.inbound_queue(SENDER)
    assert "inbound.received" not in by_event


async def test_only_the_sender_and_recipient_see_a_timeline(
    harness_factory: Any, live_logs: LiveLogs
) -> None:
    h = await harness_factory()
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
    await timeline(h, message_id, SENDER, until=_done("inbound.delivered_to_instance"))
    assert (await get_status(h, message_id, RECIPIENT))[0] == 200
    # Anyone else gets exactly what an unknown message id gets.
    unknown = new_id()
    hidden = await get_status(h, message_id, OUTSIDER)
    missing = await get_status(h, unknown, OUTSIDER)
    assert hidden[0] == missing[0] == 404
    assert hidden[1] == missing[1].replace(unknown, message_id)
    assert hidden[1] == f"404: no message {message_id} sent or received by {OUTSIDER}"
    # Lower case is the same message.
    assert (await get_status(h, message_id.lower(), SENDER))[0] == 200


async def test_the_status_route_checks_who_asks_and_what(
    harness_factory: Any, live_logs: LiveLogs
) -> None:
    h = await harness_factory(["outbound"])
    url = h.url("outbound") + f"/messages/{new_id()}"
    async with h.http.get(url) as response:
        assert response.status == 401
        assert await response.text() == (
            "401: Authorization: Bearer <instance credential> required"
        )
    async with h.http.get(url, headers={"Authorization": "Bearer nobody-at-all-0000"}) as response:
        assert response.status == 401
        assert await response.text() == "401: unknown credential"
    # Any id a caller may send is one it may ask about (tests/compat/test_ids.py).
    status, text = await get_status(h, "not-a-message-id", SENDER)
    assert (status, text) == (404, f"404: no message not-a-message-id sent or received by {SENDER}")


async def test_a_held_request_and_spines_reply_are_in_one_timeline(
    harness_factory: Any, live_logs: LiveLogs
) -> None:
    h = await harness_factory()
    message_id = new_id()
    async with h.http.post(
        h.url("outbound") + "/",
        data=orjson.dumps(
            {"payload": f'<QUPC_IN160101UK05 xmlns="urn:hl7-org:v3" id="{message_id}"/>'}
        ),
        headers={
            "Authorization": f"Bearer {h.token(SENDER)}",
            "Interaction-Id": "QUPC_IN160101UK05",
            "wait-for-response": "true",
            "Message-Id": message_id,
            "Content-Type": "application/json",
        },
    ) as response:
        assert response.status == 200, await response.text()
    body = await timeline(
        h, message_id, SENDER, until=_done("message.replied", "delivery.delivered_to_proxy")
    )
    assert body["state"] == "replied"
    assert (body["to_asid"], body["to_ods"]) == (SPINE, "YES")
    assert body["interaction_id"] == "QUPC_IN160101UK05"
    by_event = {s["event"]: s for s in body["steps"]}
    assert by_event["proxy.answered_as_spine"]["status"] == 202
    sent = by_event["proxy.reply_sent"]
    assert (sent["outcome"], sent["interaction_id"]) == ("sent", "QUPC_IN160102UK05")
    received = by_event["inbound.received"]
    assert received["inbound_message_id"] == sent["reply_message_id"]
    assert (
        by_event["inbound.delivered_to_instance"]["queue"]
        == by_event["message.awaiting_reply"]["queue"]
    )
    assert by_event["message.replied"]["status"] == 200


async def test_mhs_status_prints_the_timeline(harness_factory: Any, live_logs: LiveLogs) -> None:
    h = await harness_factory()
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
    await timeline(h, message_id, SENDER, until=_done("delivery.delivered_to_proxy"))

    async def mhs_status(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mhs",
            "status",
            message_id,
            "--outbound",
            h.url("outbound"),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"},
        )
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, _ = await mhs_status("--as", "A80002", "--json")
    assert code == 0
    shown = orjson.loads(out)
    assert (shown["message_id"], shown["state"]) == (message_id, "delivered")
    code, out, _ = await mhs_status("--credential", h.token(SENDER))
    assert code == 0
    assert message_id in out
    assert "state: delivered" in out
    assert "delivery.attempt" in out
    code, _, err = await mhs_status("--as", OUTSIDER)
    assert code == 1
    assert f"404: no message {message_id} sent or received by {OUTSIDER}" in err
    code, _, err = await mhs_status()
    assert code == 2
    assert "give exactly one of --as" in err
