"""The inbound MHS answers Spine as the NHS MHS adaptor's does: every message it takes gets
an Acknowledgment in the response, express ones too, whatever their AckRequested says."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from mhs.ids import new_id
from tests.roles.conftest import inbound_header

pytestmark = pytest.mark.rabbitmq


async def test_an_express_message_is_acknowledged_and_delivered(harness_factory: Any) -> None:
    h = await harness_factory(["inbound"])
    # Async express, as Spine sends an SCR query's answer: no AckRequested, no
    # DuplicateElimination, SyncReply present.
    header = inbound_header(
        from_party_id="YES-0000806",
        to_party_id="A80001-0000001",
        cpa_id="S918000000001",
        service="urn:nhs:names:services:psisquery",
        action="QUPC_IN160102UK05",
        ref_to_message_id=new_id(),
        sync_reply=True,
    )
    status, reply = await h.post_ebxml(header, "<QUPC_IN160102UK05/>")
    assert (status, reply.kind) == (200, "acknowledgment")
    assert reply.header is not None
    assert reply.header.ref_to_message_id == header.message_id
    # A reply is named, as the adaptor names it, by the message it answers.
    delivered = await h.take(h.settings.inbound_queue("918000000001"))
    assert delivered.message_id == header.ref_to_message_id


async def test_no_header_on_an_instance_queue_is_null(harness_factory: Any) -> None:
    h = await harness_factory(["inbound"])
    # Posted straight to the inbound MHS, without the Ssp-From the proxy adds: the sender's
    # ASID is not known, and its header is left out rather than sent as null.
    header = inbound_header(from_party_id="B80001-0000101")
    status, reply = await h.post_ebxml(header, "<RCMR_IN010000UK05/>")
    assert (status, reply.kind) == (200, "acknowledgment")
    delivered = await h.take(h.settings.inbound_queue("918000000002"))
    assert "from-asid" not in delivered.headers
    assert all(value is not None for value in delivered.headers.values())
    assert delivered.headers["to-asid"] == "918000000002"


async def test_one_shared_queue_takes_every_instances_messages(
    harness_factory: Any, unique: str
) -> None:
    # As the adaptor's consumers read: one queue, named exactly (MHS_INBOUND_QUEUE_NAME
    # there), the to-asid header saying whose each message is.
    shared = f"test-{unique}.shared-inbound"
    h = await harness_factory(
        ("inbound", "spine-proxy", "worker", "outbound"), inbound_shared_queue=shared
    )
    for ods in ("A80002", "A80003"):
        assert (await h.send("918000000001", ods_code=ods)).status == 202
    taken = [await h.take(shared) for _ in range(2)]
    assert sorted(str(d.headers["to-asid"]) for d in taken) == ["918000000002", "918000000003"]
    assert h.settings.inbound_queue("918000000002") == shared


def test_broker_users_refuse_a_shared_queue() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mhs", "broker-users"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MHS_INBOUND_SHARED_QUEUE": "inbound"},
        check=False,
    )
    assert result.returncode == 2
    assert "MHS_INBOUND_SHARED_QUEUE is set" in result.stderr
