"""End to end through every role: outbound -> RabbitMQ -> worker -> proxy -> inbound -> queue."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from mhs.directory import Directory, generate_topology
from mhs.ebxml import classify_reply, parse_header
from mhs.ids import new_id
from mhs.observe.events import Event
from tests.roles.conftest import inbound_header

pytestmark = pytest.mark.rabbitmq

SENDER = "918000000001"  # A80001, region 1
RECIPIENT = "918000000002"  # A80002, region 1: they share data
STRANGER = "918000000009"  # A80009, region 2: no agreement with A80001


@pytest.mark.parametrize("memory", [False, True], ids=["rabbitmq", "embedded"])
async def test_a_message_reaches_the_recipient_queue(harness_factory: Any, memory: bool) -> None:
    h = await harness_factory(memory=memory)
    message_id = new_id()
    response = await h.send(
        SENDER,
        ods_code="A80002",
        message_id=message_id,
        headers={"Correlation-Id": message_id.lower()},
    )
    assert response.status == 202
    assert response.headers["Message-Id"] == message_id
    # Echoed as sent (the NHS adaptor's way); it travels upper-case, as Spine writes ids.
    assert response.headers["Correlation-Id"] == message_id.lower()

    delivery = await h.take(h.settings.inbound_queue(RECIPIENT))
    sender = h.directory.by_asid(SENDER)
    recipient = h.directory.by_asid(RECIPIENT)
    assert sender is not None
    assert recipient is not None
    assert delivery.message_id == message_id
    assert delivery.correlation_id == message_id
    headers = delivery.headers
    assert headers["message-id"] == message_id
    assert headers["interaction-id"] == "RCMR_IN010000UK05"
    assert headers["from-asid"] == SENDER
    assert headers["to-asid"] == RECIPIENT
    assert headers["from-party-key"] == sender.party_key == "A80001-0000001"
    assert headers["to-party-key"] == recipient.party_key == "A80002-0000002"
    assert headers["ods-code"] == "A80002"
    assert headers["mhs-attempt"] == 1

    body = orjson.loads(delivery.body)
    assert set(body) == {"ebXML", "payload", "attachments"}
    assert message_id in body["payload"]
    header = parse_header(body["ebXML"])
    assert header.from_party_id == sender.party_key
    assert header.to_party_id == recipient.party_key
    assert header.cpa_id == recipient.cpa_id
    assert header.conversation_id == message_id
    assert header.service == "urn:nhs:names:services:gp2gp"
    assert header.action == "RCMR_IN010000UK05"
    assert header.message_id == message_id
    assert header.duplicate_elimination
    assert header.ack_requested
    assert not header.sync_reply

    for event in (
        Event.MESSAGE_ACCEPTED,
        Event.MESSAGE_QUEUED,
        Event.DELIVERY_ATTEMPT,
        Event.DELIVERY_DELIVERED,
        Event.PROXY_FORWARDED,
        Event.INBOUND_RECEIVED,
        Event.INBOUND_DELIVERED,
        Event.INBOUND_ACKNOWLEDGED,
    ):
        await h.logged(event, message_id)


async def test_a_shared_mhs_party_key_routes_by_asid(harness_factory: Any) -> None:
    directory = Directory(generate_topology(6, 2, shared_party_key=True))
    h = await harness_factory(directory=directory)
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80003", message_id=message_id)).status == 202
    delivery = await h.take(h.settings.inbound_queue("918000000003"))
    assert delivery.message_id == message_id
    assert delivery.headers["from-party-key"] == "YGA01-0000100"
    assert delivery.headers["to-party-key"] == "YGA01-0000100"
    assert delivery.headers["to-asid"] == "918000000003"
    # Nobody else sharing the party key got it.
    for other in ("918000000002", "918000000004"):
        assert await h.depth(h.settings.inbound_queue(other)) == 0


async def test_a_remote_practice_is_reached_through_its_own_mhs(harness_factory: Any) -> None:
    h = await harness_factory(extra_inbound=["remote"])
    message_id = new_id()
    # B80001 is in region 1 with A80001.
    assert (await h.send(SENDER, ods_code="B80001", message_id=message_id)).status == 202
    delivery = await h.take(h.settings.inbound_queue("928000000001"))
    assert delivery.message_id == message_id
    assert delivery.headers["to-party-key"] == "YGB01-0000200"


async def test_no_data_sharing_agreement_is_refused_dead_lettered_and_reported(
    harness_factory: Any,
) -> None:
    h = await harness_factory()
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80009", message_id=message_id)).status == 202
    token = f"FOT_CHECK_FAILED_MESSAGESENDER_{SENDER}_MESSAGERECEIVER_{STRANGER}"

    notice = await h.take(h.settings.inbound_queue(SENDER))
    assert notice.message_id == message_id
    assert notice.headers["mhs-outcome"] == "rejected"
    assert notice.headers["mhs-reason"] == token
    assert notice.headers["ref-to-message-id"] == message_id
    reply = classify_reply("text/xml", orjson.loads(notice.body)["ebXML"].encode())
    assert reply.kind == "message-error"
    assert reply.header is not None
    assert reply.header.ref_to_message_id == message_id
    assert reply.errors[0].description == token

    dead = await h.take(h.settings.dead_letter_queue)
    assert dead.message_id == message_id
    assert dead.headers["x-mhs-outcome"] == "rejected"
    assert dead.headers["x-mhs-reason"] == token
    assert dead.headers["x-mhs-attempts"] == 1
    assert orjson.loads(dead.body)["message_id"] == message_id  # the original body, unchanged

    assert await h.depth(h.settings.inbound_queue(STRANGER)) == 0
    refused = h.events_for(Event.PROXY_REFUSED, message_id)
    assert refused
    assert refused[0]["status"] == 403
    assert refused[0]["reason"] == token
    assert len(h.events_for(Event.DELIVERY_ATTEMPT, message_id)) == 1


async def test_a_proxy_answering_503_twice_delivers_on_the_third_attempt(
    harness_factory: Any,
) -> None:
    h = await harness_factory()
    async with h.http.post(
        h.url("spine-proxy") + "/_admin/faults",
        json={"kind": "http-status", "status": 503, "attempts": 2, "from_asid": SENDER},
    ) as response:
        assert response.status == 201
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
    delivery = await h.take(h.settings.inbound_queue(RECIPIENT))
    assert delivery.message_id == message_id
    assert delivery.headers["mhs-attempt"] == 3
    await h.logged(Event.DELIVERY_DELIVERED, message_id)
    attempts = h.events_for(Event.DELIVERY_ATTEMPT, message_id)
    assert [(e["attempt"], e["outcome"], e["status"]) for e in attempts] == [
        (1, "transient", 503),
        (2, "transient", 503),
        (3, "accepted", 200),
    ]
    retries = [
        e for e in h.events(Event.DELIVERY_RETRY_SCHEDULED) if e.get("message_id") == message_id
    ]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert await h.depth(h.settings.dead_letter_queue) == 0


async def test_retries_exhausted_are_dead_lettered(harness_factory: Any) -> None:
    h = await harness_factory()
    async with h.http.post(
        h.url("spine-proxy") + "/_admin/faults",
        json={"kind": "soap-fault", "code": "206", "from_asid": SENDER},
    ) as response:
        assert response.status == 201
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
    notice = await h.take(h.settings.inbound_queue(SENDER))
    assert notice.headers["mhs-outcome"] == "dead-lettered"
    assert "retries exhausted" in str(notice.headers["mhs-reason"])
    assert "206" in str(notice.headers["mhs-reason"])
    dead = await h.take(h.settings.dead_letter_queue)
    assert dead.headers["x-mhs-attempts"] == 3  # retries=2 after the first send
    assert await h.depth(h.settings.inbound_queue(RECIPIENT)) == 0


async def test_an_unknown_to_party_is_nacked_and_nothing_published(harness_factory: Any) -> None:

    h = await harness_factory(["inbound"])
    header = inbound_header(
        from_party_id="YES-0000806",
        to_party_id="NOTUS-0000001",
        cpa_id="S1001A1630",
        duplicate_elimination=True,
        ack_requested=True,
    )
    status, reply = await h.post_ebxml(header, "<x/>")
    assert status == 200
    assert reply.kind == "message-error"
    assert reply.errors[0].code == "ValueNotRecognized"
    assert reply.errors[0].description == "501314:Invalid To Party Type attribute"
    assert reply.header is not None
    assert reply.header.ref_to_message_id == header.message_id
    assert not h.events(Event.INBOUND_DELIVERED)
    for party in h.directory.parties:
        assert await h.depth(h.settings.inbound_queue(party.asid)) == 0


async def test_a_duplicate_is_acknowledged_but_delivered_once(harness_factory: Any) -> None:

    h = await harness_factory(["inbound"])
    header = inbound_header(duplicate_elimination=True, ack_requested=True)
    answers = [await h.post_ebxml(header, "<x/>") for _ in range(2)]
    assert [(status, reply.kind) for status, reply in answers] == [(200, "acknowledgment")] * 2
    await h.take(h.settings.inbound_queue(RECIPIENT))
    assert await h.depth(h.settings.inbound_queue(RECIPIENT)) == 0
    assert len(h.events(Event.INBOUND_DUPLICATE)) == 1


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "spoofed from-asid",
        {"headers": {"from-asid": "918000000002"}},
        403,
        "is not the ASID of this credential",
    ),
    ("no credential", {"headers": {"Authorization": ""}}, 401, "Authorization: Bearer"),
    (
        "unknown credential",
        {"headers": {"Authorization": "Bearer not-a-real-credential"}},
        401,
        "unknown credential",
    ),
    (
        "unknown interaction",
        {"interaction": "NOPE_IN000000UK01"},
        404,
        "Unknown interaction ID: NOPE_IN000000UK01",
    ),
    ("no interaction", {"headers": {"Interaction-Id": ""}}, 404, "Interaction-Id header required"),
    ("bad JSON", {"body": b"{not json"}, 400, "Invalid JSON request body"),
    (
        "no payload",
        {"body": b'{"attachments": []}'},
        400,
        "400: Invalid request. Validation errors: "
        "{'payload': ['Missing data for required field.']}",
    ),
    (
        "unknown field",
        {"body": b'{"payload": "<x/>", "extra": 1}'},
        400,
        "{'extra': ['Unknown field.']}",
    ),
    (
        "bad attachment type",
        {
            "body": orjson.dumps(
                {
                    "payload": "<x/>",
                    "attachments": [
                        {
                            "is_base64": False,
                            "content_type": "x/y",
                            "payload": "a",
                            "description": "d",
                        }
                    ],
                }
            )
        },
        400,
        "{'attachments': {0: {'content_type': [",
    ),
    (
        "wrong content type",
        {"headers": {"Content-Type": "text/plain"}},
        415,
        "Only application/json request bodies are supported",
    ),
    (
        "bad wait-for-response",
        {"headers": {"wait-for-response": "maybe"}},
        400,
        "wait-for-response header must be",
    ),
    (
        "wait on a non sync-async interaction",
        {"headers": {"wait-for-response": "true"}},
        400,
        "not supported for RCMR_IN010000UK05",
    ),
    (
        "message id too long",
        {"message_id": "1" * 1001},
        400,
        "Message-Id header is over 1000 characters",
    ),
    (
        # No ods-code means Spine (as the NHS adaptor), which does not receive GP2GP.
        "no recipient",
        {"ods_code": None},
        400,
        "ods-code header (the recipient's ODS code) required: without it the recipient is "
        "Spine (YES), which does not receive RCMR_IN010000UK05",
    ),
    ("unknown recipient", {"ods_code": "ZZ999"}, 400, "'ZZ999' is not a registered organisation"),
    (
        "payload sender spoofed",
        {
            "body": orjson.dumps(
                {
                    "payload": (
                        '<a xmlns="urn:hl7-org:v3"><communicationFunctionSnd><device>'
                        '<id root="1.2.826.0.1285.0.2.0.107" extension="918000000005"/>'
                        "</device></communicationFunctionSnd></a>"
                    )
                }
            )
        },
        403,
        "communicationFunctionSnd ASID 918000000005",
    ),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "status", "text"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
async def test_bad_requests_get_the_documented_error_and_nothing_is_queued(
    harness_factory: Any, name: str, kwargs: dict[str, Any], status: int, text: str
) -> None:
    h = await harness_factory(["outbound"])
    kwargs = dict(kwargs)
    ods = kwargs.pop("ods_code", "A80002")
    response: aiohttp.ClientResponse = await h.send(SENDER, ods_code=ods, **kwargs)
    assert response.status == status, name
    assert text in (await response.text())
    assert await h.depth(h.settings.outbound_queue) == 0
    assert not h.events(Event.MESSAGE_QUEUED)
