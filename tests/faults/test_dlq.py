"""``mhs dlq``: list, show and replay dead letters, as an operator runs it (a real process)
against roles on the real RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import orjson
import pytest

from mhs.broker import OutgoingMessage, PublishError
from mhs.ids import new_id
from mhs.messages.queues import declare_outbound
from mhs.observe.events import Event
from mhs.reliability.dead_letters import DeadLetters
from tests.broker.support import eventually
from tests.roles.conftest import Harness

from .conftest import RECIPIENT, SENDER, HarnessMaker, record

pytestmark = pytest.mark.rabbitmq
STRANGER_ODS = "A80009"  # no data sharing agreement with A80001


async def dlq(h: Harness, *args: str, broker: bool = True) -> tuple[int, str, str]:
    env = {**os.environ, "MHS_QUEUE_PREFIX": h.settings.queue_prefix}
    env.pop("MHS_BROKER_URL", None)
    if broker:
        env["MHS_BROKER_URL"] = str(h.settings.broker_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mhs", "dlq", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def dlq_json(h: Harness, *args: str) -> Any:
    code, out, err = await dlq(h, *args, "--json")
    assert code == 0, err
    return orjson.loads(out)


async def test_operators_list_show_and_replay_dead_letters(harness: HarnessMaker) -> None:
    h = await harness()
    async with h.http.post(
        h.url("spine-proxy") + "/_admin/faults",
        json={"kind": "soap-fault", "code": "206", "from_asid": SENDER, "to_asid": RECIPIENT},
    ) as response:
        assert response.status == 201
    failed, refused = new_id(), new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=failed)).status == 202
    assert (await h.send(SENDER, ods_code=STRANGER_ODS, message_id=refused)).status == 202
    for _ in range(2):
        await h.take(h.settings.inbound_queue(SENDER))  # the senders' notices

    listing = await dlq_json(h, "list")
    assert listing["depth"] == 2
    by_id = {m["message_id"]: m for m in listing["messages"]}
    assert by_id[failed]["outcome"] == "dead-lettered"
    assert by_id[failed]["attempts"] == 3
    assert "206" in by_id[failed]["last_error"]
    assert by_id[refused]["outcome"] == "rejected"
    assert by_id[refused]["reason"].startswith("FOT_CHECK_FAILED_MESSAGESENDER_")
    assert by_id[refused]["from_asid"] == SENDER

    # Looking is not taking, however often (more than the queues' delivery limit of 20).
    dead_letters = DeadLetters(h.broker, h.settings)
    for _ in range(25):
        assert len(await dead_letters.browse(limit=10)) == 2
    assert (await dlq_json(h, "list"))["depth"] == 2

    shown = await dlq_json(h, "show", failed)
    assert shown["reason"].startswith("retries exhausted after 3 attempts")
    assert shown["headers"]["interaction-id"] == "RCMR_IN010000UK05"
    assert shown["record"]["message_id"] == failed
    assert "payload" not in shown["record"]
    assert "body" not in shown
    assert "payload" in orjson.loads((await dlq_json(h, "show", failed, "--body"))["body"])
    code, out, _ = await dlq(h, "list")
    assert code == 0
    assert failed in out

    # The fault is mended: the replay arrives, its attempts counted from one again.
    async with h.http.delete(h.url("spine-proxy") + "/_admin/faults") as response:
        assert response.status == 204
    assert await dlq_json(h, "replay", failed) == {"replayed": 1}
    delivery = await h.take(h.settings.inbound_queue(RECIPIENT))
    assert (delivery.message_id, delivery.headers["mhs-attempt"]) == (failed, 1)
    assert [m["message_id"] for m in (await dlq_json(h, "list"))["messages"]] == [refused]

    # Spine still refuses the other: replayed, it comes back, counted as a replay.
    assert await dlq_json(h, "replay", "--all") == {"replayed": 1}
    again = await h.take(h.settings.dead_letter_queue, within_s=10)
    assert again.message_id == refused
    assert again.headers["x-mhs-replays"] == 1
    assert again.headers["x-mhs-attempts"] == 1
    assert isinstance(again.headers["x-mhs-replayed-at-ms"], int)


async def test_a_replay_of_a_delivered_message_is_not_delivered_again(
    harness: HarnessMaker,
) -> None:
    h = await harness()
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
    await h.take(h.settings.inbound_queue(RECIPIENT))
    # A second copy on the dead-letter queue (as an at-least-once worker can leave).
    copy = record(h.directory, message_id).model_dump_json().encode()
    await h.broker.publish(
        h.settings.dead_letter_queue,
        OutgoingMessage(body=copy, message_id=message_id, headers={"x-mhs-outcome": "expired"}),
    )
    assert await dlq_json(h, "replay", message_id) == {"replayed": 1}
    await eventually(
        lambda: any(e["message_id"] == message_id for e in h.events(Event.INBOUND_DUPLICATE))
    )
    assert await h.depth(h.settings.inbound_queue(RECIPIENT)) == 0
    assert await h.depth(h.settings.dead_letter_queue) == 0


async def test_a_replay_that_is_not_confirmed_leaves_the_dead_letter_where_it_was(
    harness: HarnessMaker,
) -> None:
    h = await harness(["inbound"])
    await declare_outbound(h.broker, h.settings)
    message_id = new_id()
    await h.broker.publish(
        h.settings.dead_letter_queue,
        OutgoingMessage(body=b"{}", message_id=message_id, headers={"x-mhs-outcome": "expired"}),
    )
    await h.broker.delete_queue(h.settings.outbound_queue)  # nowhere to replay to
    with pytest.raises(PublishError):
        await DeadLetters(h.broker, h.settings).replay(message_id)
    assert await h.depth(h.settings.dead_letter_queue) == 1


async def test_the_cli_says_what_is_wrong(harness: HarnessMaker) -> None:
    h = await harness(["inbound"])
    code, _, err = await dlq(h, "show", new_id())
    assert code == 1
    assert "no message" in err
    code, _, err = await dlq(h, "replay")
    assert code == 2
    assert "give a message id or --all" in err
    code, _, err = await dlq(h, "list", broker=False)
    assert code == 2
    assert "MHS_BROKER_URL" in err
