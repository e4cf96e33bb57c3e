"""scripts/inject-queue: messages straight onto the queues, taken up by the real roles."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from mhs.ebxml import parse_header
from mhs.observe.events import Event
from tests.roles.conftest import Harness

pytestmark = pytest.mark.rabbitmq
SCRIPT = Path(__file__).parents[2] / "scripts/inject-queue"


async def run_script(h: Harness, rabbitmq_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MHS_BROKER_URL": rabbitmq_url,
        "MHS_QUEUE_PREFIX": h.settings.queue_prefix,
        "MHS_CONNECTION_NAME": "test-inject-queue",
    }
    return await asyncio.to_thread(
        subprocess.run,
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def inject_queue(h: Harness, rabbitmq_url: str, *args: str) -> list[dict[str, Any]]:
    result = await run_script(h, rabbitmq_url, *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


async def test_onto_the_outbound_queue_the_workers_deliver_it(
    harness_factory: Any, rabbitmq_url: str
) -> None:
    h: Harness = await harness_factory()
    published = await inject_queue(
        h, rabbitmq_url, "outbound", "--from", "A80001", "--to", "A80002", "--count", "2"
    )
    assert [p["queue"] for p in published] == [h.settings.outbound_queue] * 2
    arrived = {
        (await h.take(h.settings.inbound_queue("918000000002"))).message_id for _ in published
    }
    assert arrived == {p["message_id"] for p in published}
    assert not h.events(Event.MESSAGE_ACCEPTED)  # the outbound API was not involved


async def test_onto_an_instance_queue_in_the_adaptor_format(
    harness_factory: Any, rabbitmq_url: str, tmp_path: Path
) -> None:
    h: Harness = await harness_factory(["outbound"])
    payload = tmp_path / "payload.xml"
    payload.write_text('<hl7:MCCI_IN010000UK13 xmlns:hl7="urn:hl7-org:v3"/>')
    [published] = await inject_queue(
        h,
        rabbitmq_url,
        "inbound",
        "--from",
        "B80001",
        "--to",
        "918000000003",
        "--interaction",
        "MCCI_IN010000UK13",
        "--payload",
        str(payload),
    )
    delivery = await h.take(h.settings.inbound_queue("918000000003"))
    assert delivery.message_id == published["message_id"]
    assert delivery.headers["from-asid"] == "928000000001"
    assert delivery.headers["interaction-id"] == "MCCI_IN010000UK13"
    body = orjson.loads(delivery.body)
    assert body["payload"] == payload.read_text()
    assert parse_header(body["ebXML"]).message_id == published["message_id"]


async def test_refuses_a_sender_that_is_not_hosted(harness_factory: Any, rabbitmq_url: str) -> None:
    h: Harness = await harness_factory(["outbound"])
    result = await run_script(h, rabbitmq_url, "outbound", "--from", "B80001", "--to", "A80002")
    assert result.returncode == 1
    assert "928000000001 is not hosted here" in result.stderr
    assert await h.depth(h.settings.outbound_queue) == 0
