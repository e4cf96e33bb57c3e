"""Redis gone, then back, under every role at once: what each answers meanwhile, that
nothing is half-accepted or lost, and that everything resumes without a restart."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from mhs.ids import new_id
from mhs.observe.events import Event
from tests.broker.support import eventually
from tests.ops.conftest import LiveLogs, live_logs
from tests.roles.conftest import HL7, Harness

from .conftest import RECIPIENT, SENDER, HarnessMaker, topology_with
from .network import Link

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis]
__all__ = ["live_logs"]


async def _status(h: Harness, message_id: str) -> tuple[int, Any]:
    async with h.http.get(
        f"{h.url('outbound')}/messages/{message_id}",
        headers={"Authorization": f"Bearer {h.token(SENDER)}"},
    ) as response:
        body = await response.read()
        return response.status, orjson.loads(body) if response.status == 200 else body.decode()


async def _ready(h: Harness, role: str) -> int:
    async with h.http.get(h.url(role) + "/readyz") as response:
        return response.status


async def _held(h: Harness) -> tuple[int, str]:
    async with h.http.post(
        h.url("outbound") + "/",
        data=orjson.dumps({"payload": HL7.format(id=new_id())}),
        headers={
            "Authorization": f"Bearer {h.token(SENDER)}",
            "Interaction-Id": "QUPC_IN160101UK05",
            "wait-for-response": "true",
            "Content-Type": "application/json",
        },
    ) as response:
        return response.status, await response.text()


async def test_while_redis_is_gone_messages_wait_and_nothing_is_lost_or_half_accepted(
    harness: HarnessMaker, redis_url: str, live_logs: LiveLogs
) -> None:
    parts = urlsplit(redis_url)
    link = Link(parts.hostname or "127.0.0.1", parts.port or 6379)
    await link.up()
    # Retries long enough to outlast the outage, as Spine's own intervals are.
    directory = topology_with(retries=40, retry_interval="PT0.5S")
    h = await harness(directory=directory, state_url=f"redis://127.0.0.1:{link.port}/0")
    await link.cut()
    message_id = new_id()
    response = await h.send(SENDER, ods_code="A80002", message_id=message_id)
    # The outbound MHS needs no Redis to accept a message: it is queued durably.
    assert response.status == 202
    # The inbound MHS cannot eliminate duplicates, so it refuses; the worker retries.
    await eventually(lambda: _refused(live_logs, message_id), within_s=10)
    assert await h.depth(h.settings.inbound_queue(RECIPIENT)) == 0
    # Asking for a status, or to be held for a reply, is refused, and nothing is sent.
    status, text = await _status(h, message_id)
    assert (status, text) == (
        503,
        "503: message status is not available: the state store did not answer; ask again",
    )
    status, text = await _held(h)
    assert status == 503
    assert "nothing was accepted: the state store did not answer" in text
    assert (await _ready(h, "inbound"), await _ready(h, "outbound")) == (503, 200)

    await link.up()
    delivered = await h.take(h.settings.inbound_queue(RECIPIENT), within_s=30)
    assert delivered.message_id == message_id
    await eventually(lambda: _ready_again(h), within_s=10)
    # Steps logged during the outage were held and written once Redis answered again.

    async def complete() -> bool:
        code, body = await _status(h, message_id)
        return code == 200 and body["state"] == "delivered"

    await eventually(complete, within_s=10)
    _, body = await _status(h, message_id)
    assert "inbound.refused" in [step["event"] for step in body["steps"]]
    failed = live_logs.events(Event.STATUS_WRITE_FAILED)
    assert failed
    assert all(e["records"] == 0 for e in failed)  # held, none dropped
    assert await h.depth(h.settings.inbound_queue(RECIPIENT)) == 0  # once
    await link.cut()


def _refused(logs: LiveLogs, message_id: str) -> bool:
    return any(
        e.get("message_id") == message_id and e.get("status") == 503
        for e in logs.events(Event.INBOUND_REFUSED)
    )


async def _ready_again(h: Harness) -> bool:
    return await _ready(h, "inbound") == 200
