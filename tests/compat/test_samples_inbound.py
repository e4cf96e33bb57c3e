"""Every NHS MHS adaptor wire sample through a running inbound MHS, as Spine would post it:
each one it can read is acknowledged and reaches its recipient's queue with its payload and
attachments; the one addressed to another party gets Spine's NACK; the unreadable ones are
refused with what is wrong (MHS_SAMPLES_DIR, see tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from mhs.ebxml import classify_reply, parse_message
from tests.domain.test_ebxml_samples import CONTENT_TYPE, GOOD_REQUESTS, load_msg

pytestmark = pytest.mark.rabbitmq

B = "918000000002"  # A80002, hosted here with its own party key
B_PARTY_KEY = "A80002-0000002"
ADDRESSED_ELSEWHERE = "inbound/ebxml_request_unintended.msg"
UNREADABLE = [
    "messages/ebxml_request_invalid_binary_ebxml_header.msg",
    "messages/ebxml_request_no_header.msg",
]


async def _post(h: Any, body: bytes) -> tuple[int, bytes, str | None]:
    async with h.http.post(
        h.url("inbound") + "/reliablemessaging", data=body, headers={"Content-Type": CONTENT_TYPE}
    ) as response:
        return response.status, await response.read(), response.headers.get("Content-Type")


@pytest.mark.parametrize("name", [n for n in GOOD_REQUESTS if n != ADDRESSED_ELSEWHERE])
async def test_each_sample_is_acknowledged_and_delivered(
    harness_factory: Any, samples_dir: Path, name: str
) -> None:
    h = await harness_factory(["inbound"])
    raw = load_msg(samples_dir / name)
    sample = parse_message(CONTENT_TYPE, raw)
    # Addressed to one of our hosted practices instead of the adaptor's test party.
    to_party = f">{sample.header.to_party_id}</eb:PartyId>".encode()
    body = raw.replace(to_party, f">{B_PARTY_KEY}</eb:PartyId>".encode())
    status, answer, content_type = await _post(h, body)
    assert status == 200, answer
    reply = classify_reply(content_type, answer)
    assert reply.kind == "acknowledgment"
    assert reply.header is not None
    assert reply.header.ref_to_message_id == sample.header.message_id
    delivered = await h.take(h.settings.inbound_queue(B))
    queued = orjson.loads(delivered.body)
    assert queued["payload"] == sample.payload
    assert [(a["content_id"], a["content_type"], a["payload"]) for a in queued["attachments"]] == [
        (a.content_id, a.content_type, a.payload) for a in sample.attachments
    ]
    assert delivered.headers["interaction-id"] == sample.header.action
    assert delivered.correlation_id == sample.header.conversation_id


async def test_a_sample_addressed_to_another_party_gets_spines_nack(
    harness_factory: Any, samples_dir: Path
) -> None:
    h = await harness_factory(["inbound"])
    status, answer, content_type = await _post(h, load_msg(samples_dir / ADDRESSED_ELSEWHERE))
    reply = classify_reply(content_type, answer)
    assert (status, reply.kind) == (200, "message-error")
    assert [e.description for e in reply.errors] == ["501314:Invalid To Party Type attribute"]


@pytest.mark.parametrize("name", UNREADABLE)
async def test_an_unreadable_sample_is_refused_saying_why(
    harness_factory: Any, samples_dir: Path, name: str
) -> None:
    h = await harness_factory(["inbound"])
    status, answer, _ = await _post(h, load_msg(samples_dir / name))
    assert status == 400
    assert answer.decode().startswith("400: ")
    assert len(answer) > len("400: ")
