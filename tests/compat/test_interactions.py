"""The NHS MHS adaptor's interactions, all of them, with their workflows: the built-in
catalogue matches its interactions.json, the ``sync`` pattern answers in the same HTTP
exchange with Spine's HL7, and Spine's answers carry what the request asked about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from lxml import etree

from mhs.directory.catalogue import CATALOGUE
from mhs.directory.loader import load_topology
from mhs.ebxml.soap import hl7_text, read_sync
from mhs.ids import new_id
from mhs.observe.events import Event

pytestmark = pytest.mark.rabbitmq

A = "918000000001"
SPINE = "990000000806"
NS = {"hl7": "urn:hl7-org:v3"}
WORKFLOWS = {"Forward Express": "forward-express"}
NHS_NUMBER = "9691234567"
PDS_QUERY = f"""<QUPA_IN040000UK32 xmlns="urn:hl7-org:v3">
  <id root="{{id}}"/>
  <interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="QUPA_IN040000UK32"/>
  <communicationFunctionRcv><device><id root="1.2.826.0.1285.0.2.0.107" extension="{SPINE}"/>
  </device></communicationFunctionRcv>
  <communicationFunctionSnd><device><id root="1.2.826.0.1285.0.2.0.107" extension="{A}"/>
  </device></communicationFunctionSnd>
  <ControlActEvent classCode="CACT" moodCode="EVN"><query>
    <person.id><value root="2.16.840.1.113883.2.1.4.1" extension="{NHS_NUMBER}"/></person.id>
  </query></ControlActEvent>
</QUPA_IN040000UK32>"""


def test_the_catalogue_has_every_adaptor_interaction_with_its_workflow(samples_dir: Path) -> None:
    theirs = orjson.loads((samples_dir / "contract/interactions.json").read_bytes())
    directory = load_topology()
    assert len(theirs) == 91
    for interaction_id, entry in theirs.items():
        ours = directory.interaction(interaction_id)
        assert ours is not None, interaction_id
        workflow = WORKFLOWS.get(entry["workflow"], entry["workflow"])
        assert (ours.service, ours.pattern, ours.sync_async) == (
            entry["service"],
            workflow,
            entry["sync_async"],
        ), interaction_id
    # Ours adds only Spine's reply to an SCR document list request.
    assert set(CATALOGUE) - set(theirs) == {"QUPC_IN160102UK05"}


def test_the_adaptors_sync_message_sample_reads_as_a_sync_request(samples_dir: Path) -> None:
    text = (samples_dir / "inbound/sync_message.xml").read_text()
    filled = (
        text.replace("{{{messageGUID}}}", "C258107F-7A3F-4FB5-8B36-D7C0F6496A17")
        .replace("{{{toASID}}}", SPINE)
        .replace("{{{fromASID}}}", A)
    )
    message = read_sync(filled.encode(), "sync_message.xml")
    assert message.message_id == "C258107F-7A3F-4FB5-8B36-D7C0F6496A17"
    assert message.interaction_id == "QUPA_IN040000UK32"
    assert (message.from_asid, message.to_asid) == (A, SPINE)
    assert message.payload.tag == "{urn:hl7-org:v3}QUPA_IN040000UK32"
    assert 'root="9CB12D64-19FA-42CD-B403-0CC205BD5B23"' in hl7_text(message.payload)


async def _sync(
    h: Any, headers: dict[str, str] | None = None, without: tuple[str, ...] = ()
) -> tuple[int, str, dict[str, str]]:
    hl7_id = new_id()
    sent = {
        "Authorization": f"Bearer {h.token(A)}",
        "Interaction-Id": "QUPA_IN040000UK32",
        "wait-for-response": "false",
        "from-asid": A,
        "Content-Type": "application/json",
        "Message-Id": hl7_id,
        **(headers or {}),
    }
    async with h.http.post(
        h.url("outbound") + "/",
        data=orjson.dumps({"payload": PDS_QUERY.format(id=hl7_id)}),
        headers={k: v for k, v in sent.items() if k not in without},
    ) as response:
        return response.status, await response.text(), dict(response.headers)


async def test_a_sync_pds_query_is_answered_with_spines_hl7_at_once(harness_factory: Any) -> None:
    # Only the outbound MHS and the proxy: a sync request is never queued.
    h = await harness_factory(("spine-proxy", "outbound"))
    status, text, headers = await _sync(h)
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/xml")
    message_id = headers["Message-Id"]
    hl7 = etree.fromstring(text.encode())
    assert hl7.tag == "{urn:hl7-org:v3}QUPA_IN050000UK32"
    assert hl7.xpath("hl7:acknowledgement/hl7:messageRef/hl7:id/@root", namespaces=NS) == [
        message_id
    ]
    assert hl7.xpath("//hl7:patientRole/hl7:id/@extension", namespaces=NS) == [NHS_NUMBER]
    [answered] = h.events_for(Event.PROXY_ANSWERED_AS_SPINE, message_id)
    assert (answered["from_asid"], answered["to_asid"]) == (A, SPINE)
    [replied] = h.events_for(Event.MESSAGE_REPLIED, message_id)
    assert replied["status"] == 200
    assert await h.depth(h.settings.outbound_queue) == 0


async def test_a_spine_fault_on_a_sync_query_is_the_adaptors_error_json(
    harness_factory: Any,
) -> None:
    h = await harness_factory(("spine-proxy", "outbound"))
    await h.add_fault(kind="soap-fault", interaction_id="QUPA_IN040000UK32", code="300")
    status, text, headers = await _sync(h)
    assert status == 500
    # The adaptor's error JSON, labelled text/plain as the adaptor labels it.
    assert headers["Content-Type"].startswith("text/plain")
    body = orjson.loads(text)
    assert body["process_key"] == "SOAP_ERROR_HANDLER0002"
    [error] = body["errors"]
    assert (error["errorCode"], error["errorType"]) == ("300", "soap_fault")
    [refused] = h.events_for(Event.MESSAGE_REFUSED, headers["Message-Id"])
    assert refused["status"] == 500


async def test_any_other_status_spine_answers_a_sync_query_is_passed_on(
    harness_factory: Any,
) -> None:
    h = await harness_factory(("spine-proxy", "outbound"))
    await h.add_fault(kind="http-status", interaction_id="QUPA_IN040000UK32", status=503)
    status, text, headers = await _sync(h)
    assert status == 503
    assert headers["Message-Id"]
    assert text


async def test_a_sync_query_needs_no_from_asid_the_credential_says_who_sends(
    harness_factory: Any,
) -> None:
    h = await harness_factory(("spine-proxy", "outbound"))
    status, text, _ = await _sync(h, without=("from-asid",))
    assert status == 200, text
    status, text, _ = await _sync(h, {"from-asid": "918000000002"})
    assert (status, text) == (
        403,
        "403: from-asid '918000000002' is not the ASID of this credential",
    )


async def test_wait_for_response_true_is_refused_for_a_sync_interaction(
    harness_factory: Any,
) -> None:
    h = await harness_factory(("outbound",))
    status, text, _ = await _sync(h, {"wait-for-response": "true"})
    assert (status, text) == (
        400,
        "400: wait-for-response: true is not supported for QUPA_IN040000UK32",
    )


@pytest.mark.parametrize(
    ("interaction", "status"),
    [("PRSC_IN080000UK07", 200), ("PRSC_IN080000UK03", 202), ("PORX_IN020101UK31", 200)],
)
async def test_spine_takes_forward_and_async_interactions_of_the_catalogue(
    harness_factory: Any, interaction: str, status: int
) -> None:
    """e-RS forward-reliable and forward-express, EPS async-reliable: queued, delivered to
    Spine, acknowledged as their flags ask (an Ack for a reliable one, else 202)."""
    h = await harness_factory(("spine-proxy", "worker", "outbound"))
    message_id = new_id()
    response = await h.send(A, ods_code=None, interaction=interaction, message_id=message_id)
    assert response.status == 202
    [answered] = await h.logged(Event.PROXY_ANSWERED_AS_SPINE, message_id)
    assert (answered["status"], answered["interaction_id"]) == (status, interaction)
