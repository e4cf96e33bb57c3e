"""The NHS MHS adaptor's own component tests, as data (adaptor_scenarios.yaml), against our
roles on RabbitMQ in its way of answering (MHS_ACCEPTANCE=spine): its requests, with only
our Bearer credential added, get the statuses, error JSON and replies its assertions want."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from lxml import etree

from mhs.ids import new_id

pytestmark = pytest.mark.rabbitmq

SENDER = "918000000001"  # A80001, hosted
ROLES = ("inbound", "spine-proxy", "worker", "outbound")
SCENARIOS: list[dict[str, Any]] = yaml.safe_load(
    Path(__file__).with_name("adaptor_scenarios.yaml").read_text()
)
PAYLOAD = """<{interaction} xmlns="urn:hl7-org:v3">
  <id root="{id}"/>
  <interactionId root="2.16.840.1.113883.2.1.3.2.4.12" extension="{interaction}"/>
  <communicationFunctionSnd><device><id root="1.2.826.0.1285.0.2.0.107" extension="{asid}"/>
  </device></communicationFunctionSnd>
</{interaction}>"""


def _request(h: Any, scenario: dict[str, Any], message_id: str) -> tuple[bytes, dict[str, str]]:
    interaction = scenario["interaction"]
    headers = {
        "Authorization": f"Bearer {h.token(SENDER)}",
        "Interaction-Id": interaction,
        "wait-for-response": "true" if scenario["wait"] else "false",
        "Message-Id": message_id,
        "Content-Type": "application/json",
    }
    if "ods_code" in scenario:
        headers["ods-code"] = scenario["ods_code"]
    if scenario.get("from_asid"):
        headers["from-asid"] = SENDER
    payload = PAYLOAD.format(interaction=interaction.strip(), id=message_id, asid=SENDER)
    return orjson.dumps({"payload": payload}), headers


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
async def test_an_adaptor_component_test_passes_unchanged(
    harness_factory: Any, scenario: dict[str, Any]
) -> None:
    h = await harness_factory(ROLES, acceptance="spine")
    if "spine" in scenario:
        await h.add_fault(**scenario["spine"], interaction_id=scenario["interaction"].strip())
    message_id = new_id()
    body, headers = _request(h, scenario, message_id)
    async with h.http.post(h.url("outbound") + "/", data=body, headers=headers) as response:
        status, text, answered = response.status, await response.text(), response.headers
    expect = scenario["expect"]
    assert status == expect["status"], text
    assert answered["Message-Id"] == message_id
    if "error" in expect:
        error = orjson.loads(text)["errors"][0]
        assert {k: error.get(k) for k in expect["error"]} == expect["error"]
    if "reply" in expect:
        assert etree.QName(etree.fromstring(text.encode())).localname == expect["reply"]
