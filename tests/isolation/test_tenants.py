"""Tenant isolation at the outbound MHS: a credential is one instance's ASID and nothing
else, it is compared whole, and it never reaches a log line."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mhs.directory import load_topology
from mhs.ids import new_id
from mhs.observe.events import Event

pytestmark = pytest.mark.rabbitmq

A, B = "918000000001", "918000000002"
HL7_FROM_B = (
    '<hl7:RCMR_IN010000UK05 xmlns:hl7="urn:hl7-org:v3">'
    '<hl7:communicationFunctionSnd><hl7:device><hl7:id root="1.2.826.0.1285.0.2.0.107" '
    f'extension="{B}"/></hl7:device></hl7:communicationFunctionSnd></hl7:RCMR_IN010000UK05>'
)


async def test_an_instance_cannot_send_as_another(harness_factory: Any) -> None:
    h = await harness_factory(("outbound",))
    response = await h.send(A, ods_code="A80003", headers={"from-asid": B})
    assert response.status == 403
    response = await h.send(A, ods_code="A80003", body=orjson.dumps({"payload": HL7_FROM_B}))
    assert response.status == 403
    assert await h.depth(h.settings.outbound_queue) == 0
    # What A may send is stamped as A, whatever else the request says.
    message_id = new_id()
    assert (await h.send(A, ods_code="A80003", message_id=message_id)).status == 202
    delivery = await h.take(h.settings.outbound_queue)
    assert delivery.headers["from-asid"] == A
    assert delivery.headers["from-party-key"] == "A80001-0000001"


# The adaptor's own templates address Spine and test environments this way.
HL7_TO_SPINE_TEST = (
    '<hl7:RCMR_IN010000UK05 xmlns:hl7="urn:hl7-org:v3">'
    '<hl7:communicationFunctionRcv><hl7:device><hl7:id root="1.2.826.0.1285.0.2.0.107" '
    'extension="227319907548"/></hl7:device></hl7:communicationFunctionRcv>'
    "</hl7:RCMR_IN010000UK05>"
)


async def test_a_foreign_hl7_receiver_is_a_warning_by_default(harness_factory: Any) -> None:
    h = await harness_factory(("outbound",))
    message_id = new_id()
    body = orjson.dumps({"payload": HL7_TO_SPINE_TEST})
    response = await h.send(A, ods_code="A80002", message_id=message_id, body=body)
    assert response.status == 202
    # Sent to the directory's recipient, and the mismatch said.
    assert (await h.take(h.settings.outbound_queue)).headers["to-asid"] == B
    [warned] = h.events(Event.MESSAGE_RECEIVER_MISMATCH)
    assert warned["log_level"] == "warning"
    assert warned["payload_receiver_asid"] == "227319907548"
    assert warned["to_asid"] == B


async def test_a_foreign_hl7_receiver_is_refused_when_strict(harness_factory: Any) -> None:
    h = await harness_factory(("outbound",), hl7_receiver_check="strict")
    body = orjson.dumps({"payload": HL7_TO_SPINE_TEST})
    response = await h.send(A, ods_code="A80002", body=body)
    assert response.status == 400
    assert await h.depth(h.settings.outbound_queue) == 0


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-1],
        lambda c: c + "0",
        lambda c: c.upper(),
        lambda c: " " + c[1:],
        lambda c: c[: len(c) // 2],
    ],
    ids=["shorter", "longer", "upper-case", "first-changed", "half"],
)
async def test_only_the_whole_credential_opens(harness_factory: Any, mangle: Any) -> None:
    h = await harness_factory(("outbound",))
    credential = h.token(A)
    response = await h.send(
        A, ods_code="A80003", headers={"Authorization": f"Bearer {mangle(credential)}"}
    )
    assert response.status == 401
    assert h.events(Event.MESSAGE_REFUSED)[-1]["reason"] == "unknown credential"


def test_remote_instances_have_no_credential() -> None:
    directory = load_topology()
    for party in directory.parties:
        assert (directory.credential_for(party.asid) is not None) == party.hosted


async def test_credentials_never_reach_the_logs(harness_factory: Any) -> None:
    h = await harness_factory(("outbound",))
    credentials = [h.token(a) for a in (A, B)]
    await h.send(A, ods_code="A80003")
    await h.send(A, ods_code="A80003", headers={"from-asid": B})
    await h.send(B, ods_code="NOPE")
    await h.send(A, ods_code="A80003", headers={"Authorization": "Bearer " + credentials[1] + "x"})
    text = orjson.dumps(h.logs, default=str).decode()
    assert h.events(Event.MESSAGE_QUEUED)
    assert len(h.events(Event.MESSAGE_REFUSED)) == 3
    for credential in credentials:
        assert credential not in text
