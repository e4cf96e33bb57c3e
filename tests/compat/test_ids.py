"""Message-Id and Correlation-Id as the NHS MHS adaptor takes them: any string (its own
tests send ``Correlation-Id: 1``), echoed exactly as sent wherever the caller sees the
message, and carried through ebXML as UUIDs derived from them (mhs.ids.wire_id)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mhs.ids import new_id, wire_id
from mhs.observe.events import Event
from tests.ops.conftest import LiveLogs
from tests.status.conftest import timeline

pytestmark = pytest.mark.rabbitmq

A, B = "918000000001", "918000000002"


async def test_any_id_is_taken_echoed_exactly_and_delivered(
    harness_factory: Any, live_logs: LiveLogs
) -> None:
    h = await harness_factory(("inbound", "spine-proxy", "worker", "outbound"))
    given = {"Message-Id": "gp2gp-ehr-extract-0001", "Correlation-Id": "1"}
    response = await h.send(A, ods_code="A80002", headers=given)
    assert response.status == 202
    assert {k: response.headers[k] for k in given} == given
    delivered = await h.take(h.settings.inbound_queue(B))
    # On the wire: the UUIDs derived from them, which the inbound MHS requires.
    assert delivered.message_id == wire_id("gp2gp-ehr-extract-0001", A)
    assert delivered.correlation_id == wire_id("1", A)
    # Its status, asked by the caller's own id.
    body = await timeline(h, "gp2gp-ehr-extract-0001", A, until=lambda b: b["state"] != "")
    assert body["message_id"] == delivered.message_id


async def test_the_same_id_sent_again_is_the_same_message(harness_factory: Any) -> None:
    h = await harness_factory(("inbound", "spine-proxy", "worker", "outbound"))
    for _ in range(2):
        response = await h.send(A, ods_code="A80002", headers={"Message-Id": "resent-7"})
        assert response.status == 202
    await h.take(h.settings.inbound_queue(B))
    # The inbound MHS dropped the second copy as a duplicate, as Spine's would.
    message_id = wire_id("resent-7", A)
    await h.logged(Event.INBOUND_DUPLICATE, message_id)
    assert await h.depth(h.settings.inbound_queue(B)) == 0


async def test_a_lower_case_uuid_comes_back_lower_case(harness_factory: Any) -> None:
    h = await harness_factory(("outbound",))
    given = new_id().lower()
    response = await h.send(A, ods_code="A80002", headers={"Message-Id": given})
    assert response.status == 202
    assert response.headers["Message-Id"] == given
    queued = await h.take(h.settings.outbound_queue)
    assert queued.message_id == given.upper()
    assert orjson.loads(queued.body)["given_message_id"] == given


async def test_two_senders_with_the_same_id_send_two_messages() -> None:
    assert wire_id("1", A) != wire_id("1", B)
    assert wire_id("1", A) == wire_id("1", A)
    uuid = new_id()
    assert wire_id(uuid.lower(), A) == uuid == wire_id(uuid, B)


async def test_the_senders_notice_names_the_message_by_its_given_id(harness_factory: Any) -> None:
    h = await harness_factory(("inbound", "spine-proxy", "worker", "outbound"))
    # A80009 shares no data with A80001: Spine refuses, and the sender is told.
    response = await h.send(
        A, ods_code="A80009", headers={"Message-Id": "refused-1", "Correlation-Id": "conv-1"}
    )
    assert response.status == 202
    notice = await h.take(h.settings.inbound_queue(A))
    assert notice.message_id == "refused-1"
    assert notice.correlation_id == "conv-1"
    assert notice.headers["ref-to-message-id"] == "refused-1"
    assert notice.headers["mhs-outcome"] == "rejected"
    body = orjson.loads(notice.body)
    assert body["payload"] is None  # never "", which an adaptor consumer would parse
    assert "MessageError" in body["ebXML"]
