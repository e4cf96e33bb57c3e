"""The NHS MHS adaptor's consumers read its inbound queue over AMQP 1.0 (python-qpid-proton,
JMS): they read ours the same way. A message reaches our inbound MHS as Spine sends it, and a
proton client takes it from RabbitMQ's AMQP 1.0 side: the adaptor's body, ``message-id`` and
``correlation-id`` as string application properties, none of them null, ``application/json``.

What RabbitMQ 3.10's AMQP 1.0 plugin does with a message published over AMQP 0-9-1, as seen
here: its headers are not application properties (the plugin maps none; ours carries them
encoded in ``x-amqp-1.0-app-properties``, see ``mhs.broker.codec``), the body is a data
section (binary), and an existing queue is addressed as ``/amq/queue/<name>``: a bare
``<name>`` (or ``/queue/<name>``) has the plugin declare the queue, which our durable quorum
queues refuse (``precondition-failed``), so the link never opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import yaml
from proton import Data, Described, Message, ProtonException
from proton.utils import BlockingConnection

from mhs.broker.codec import AMQP10_APP_PROPERTIES_HEADER, amqp10_application_properties
from mhs.ids import new_id
from mhs.messages.instance import instance_message
from tests.roles.conftest import HL7, inbound_header

# The protocol header an AMQP 1.0 client with SASL opens with; a broker that speaks AMQP 1.0
# answers with the same, RabbitMQ 3.x without its plugin with its AMQP 0-9-1 one.
_AMQP10_SASL_HEADER = b"AMQP\x03\x01\x00\x00"
_ENABLE = (
    "enable RabbitMQ's AMQP 1.0 support: `rabbitmq-plugins enable rabbitmq_amqp1_0` "
    "(RabbitMQ 3.x; 4.x speaks AMQP 1.0 without a plugin)"
)
_WITHIN_S = 10.0


def _answer_to_amqp10(host: str, port: int) -> bytes:
    """What the broker answers an AMQP 1.0 protocol header with (b"" if it closes)."""
    answer = b""
    try:
        with socket.create_connection((host, port), 2) as link:
            link.settimeout(2)
            link.sendall(_AMQP10_SASL_HEADER)
            while len(answer) < len(_AMQP10_SASL_HEADER):
                chunk = link.recv(len(_AMQP10_SASL_HEADER) - len(answer))
                if not chunk:
                    break
                answer += chunk
    except OSError:
        pass
    return answer


@pytest.fixture(scope="session")
def amqp10_url(rabbitmq_url: str) -> str:
    """The broker's AMQP 1.0 side, as a proton URL. Fails (never skips) when
    MHS_REQUIRE_BROKER=1 and the broker does not speak AMQP 1.0."""
    parts = urlsplit(rabbitmq_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    answer = _answer_to_amqp10(host, port)
    if answer != _AMQP10_SASL_HEADER:
        message = (
            f"RabbitMQ at {host}:{port} does not speak AMQP 1.0 (it answered {answer!r}): "
            + _ENABLE
        )
        if os.environ.get("MHS_REQUIRE_BROKER") == "1":
            pytest.fail(message + " (MHS_REQUIRE_BROKER=1)")
        pytest.skip(message)
    return f"amqp://{parts.username or 'guest'}:{parts.password or 'guest'}@{host}:{port}"


def _receive(url: str, address: str) -> Message:
    """One message from ``address``, accepted, as a proton consumer takes it."""
    connection = BlockingConnection(url, timeout=_WITHIN_S)
    try:
        receiver = connection.create_receiver(address)
        message = receiver.receive(timeout=_WITHIN_S)
        receiver.accept()
        return message
    finally:
        connection.close()


async def receive(url: str, queue: str) -> Message:
    """The next message on our queue ``queue``, read over AMQP 1.0 (in a thread: proton's
    blocking client runs its own loop)."""
    return await asyncio.to_thread(_receive, url, f"/amq/queue/{queue}")


def assert_as_the_adaptor_writes(
    message: Message, *, message_id: str, correlation_id: str, payload: str
) -> dict[str, object]:
    """The message as the adaptor's consumers read it; its application properties."""
    # A data section (bytes; proton 0.40 gives a memoryview) holding the UTF-8 JSON, where
    # the adaptor writes a string: a proton reader takes bytes(message.body).
    assert isinstance(message.body, bytes | memoryview)
    body = orjson.loads(bytes(message.body))
    assert set(body) == {"ebXML", "payload", "attachments"}
    assert body["payload"] == payload
    assert body["attachments"] == []
    assert message.content_type == "application/json"
    assert message.durable is True
    properties: dict[str, object] = dict(message.properties or {})
    assert properties["message-id"] == message_id
    assert properties["correlation-id"] == correlation_id
    assert all(isinstance(value, str) for value in properties.values()), properties
    # The AMQP 1.0 properties section names the message too.
    assert (message.id, message.correlation_id) == (message_id, correlation_id)
    return properties


@pytest.mark.rabbitmq
async def test_a_reply_on_the_shared_queue_reads_as_the_adaptors(
    harness_factory: Any, amqp10_url: str, unique: str
) -> None:
    shared = f"test-{unique}.shared-inbound"
    h = await harness_factory(["inbound"], inbound_shared_queue=shared)
    original = new_id()  # the outbound message this one answers
    header = inbound_header(ref_to_message_id=original)
    payload = HL7.format(id=header.message_id)
    status, reply = await h.post_ebxml(header, payload)
    assert (status, reply.kind) == (200, "acknowledgment")

    message = await receive(amqp10_url, shared)
    # A reply is named, as the adaptor names it, by the message it answers.
    properties = assert_as_the_adaptor_writes(
        message, message_id=original, correlation_id=header.conversation_id, payload=payload
    )
    assert properties["to-asid"] == "918000000002"  # whose it is, on the one shared queue
    assert properties["inbound-message-id"] == header.message_id
    assert await h.depth(shared) == 0  # accepted over AMQP 1.0: gone from the queue


@pytest.mark.rabbitmq
async def test_a_reply_passed_on_by_an_outbound_replica_reads_as_the_adaptors(
    harness_factory: Any, amqp10_url: str
) -> None:
    """A reply nobody was held for any more, taken from the unclaimed replies queue and put
    on its recipient's queue by an outbound replica, keeps its properties."""
    h = await harness_factory(["outbound"])
    original, conversation = new_id(), new_id()
    payload = HL7.format(id=original)
    reply = instance_message(
        ebxml="<SOAP:Envelope/>",
        payload=payload,
        message_id=original,
        correlation_id=conversation,
        interaction_id="QUPC_IN160102UK05",
        from_asid="990000000806",
        to_asid="918000000001",
        from_party_key="YES-0000806",
        to_party_key="A80001-0000001",
        ods_code="A80001",
    )
    await h.broker.publish(h.settings.unclaimed_replies_queue, reply)
    message = await receive(amqp10_url, h.settings.inbound_queue("918000000001"))
    properties = assert_as_the_adaptor_writes(
        message, message_id=original, correlation_id=conversation, payload=payload
    )
    assert properties["to-asid"] == "918000000001"


@pytest.mark.rabbitmq
async def test_an_unsolicited_message_on_an_instance_queue_reads_as_the_adaptors(
    harness_factory: Any, amqp10_url: str
) -> None:
    h = await harness_factory(["inbound"])
    header = inbound_header()  # no RefToMessageId: it starts a conversation
    payload = HL7.format(id=header.message_id)
    status, reply = await h.post_ebxml(header, payload)
    assert (status, reply.kind) == (200, "acknowledgment")

    queue = h.settings.inbound_queue("918000000002")
    assert queue.startswith(f"{h.settings.queue_prefix}inbound.")
    message = await receive(amqp10_url, queue)
    properties = assert_as_the_adaptor_writes(
        message,
        message_id=header.message_id,
        correlation_id=header.conversation_id,
        payload=payload,
    )
    # Posted without the proxy's Ssp-From: the sender's ASID is not known, and is left out
    # rather than sent as null.
    assert "from-asid" not in properties


@pytest.mark.rabbitmq
async def test_a_message_through_every_role_reads_as_the_adaptors(
    harness_factory: Any, amqp10_url: str, unique: str
) -> None:
    shared = f"test-{unique}.shared-inbound"
    h = await harness_factory(
        ("inbound", "spine-proxy", "worker", "outbound"), inbound_shared_queue=shared
    )
    message_id, correlation_id = new_id(), new_id()
    response = await h.send(
        "918000000001",
        ods_code="A80002",
        message_id=message_id,
        headers={"Correlation-Id": correlation_id},
    )
    assert response.status == 202

    message = await receive(amqp10_url, shared)
    properties = assert_as_the_adaptor_writes(
        message,
        message_id=message_id,
        correlation_id=correlation_id,
        payload=HL7.format(id=message_id),
    )
    assert properties["from-asid"] == "918000000001"
    # A number among our headers (the delivery attempt) is text here, as JSON writes it.
    assert properties["mhs-attempt"] == "1"


def _open_receiver(url: str, address: str) -> None:
    connection = BlockingConnection(url, timeout=3)
    try:
        connection.create_receiver(address)
    finally:
        with contextlib.suppress(ProtonException):
            connection.close()


@pytest.mark.rabbitmq
async def test_a_bare_queue_name_is_no_address_for_our_queues(
    harness_factory: Any, amqp10_url: str
) -> None:
    h = await harness_factory(["inbound"])
    header = inbound_header()
    assert (await h.post_ebxml(header, HL7.format(id=header.message_id)))[0] == 200
    queue = h.settings.inbound_queue("918000000002")
    # RabbitMQ 3.x's plugin takes a bare name as a queue to declare, which our durable
    # quorum queue refuses (precondition-failed): the link never opens.
    with pytest.raises(ProtonException):
        await asyncio.to_thread(_open_receiver, amqp10_url, queue)
    message = await receive(amqp10_url, queue)  # /amq/queue/<name>: still there
    assert message.id == header.message_id


@pytest.mark.rabbitmq
async def test_an_amqp091_reader_sees_the_headers_alone(harness_factory: Any) -> None:
    h = await harness_factory(["inbound"])
    header = inbound_header()
    assert (await h.post_ebxml(header, HL7.format(id=header.message_id)))[0] == 200
    delivered = await h.take(h.settings.inbound_queue("918000000002"))
    # The section for AMQP 1.0 readers travels as a header, and is not shown as one.
    assert AMQP10_APP_PROPERTIES_HEADER not in delivered.headers
    assert delivered.headers["message-id"] == header.message_id


def test_the_compose_broker_starts_with_amqp10() -> None:
    """docker/compose.yaml's RabbitMQ (3.x) boots with the plugin, beside the image's own."""
    root = Path(__file__).parents[2]
    compose = yaml.safe_load((root / "docker/compose.yaml").read_text())
    mounts = dict(
        volume.removesuffix(":ro").split(":", 1)
        for volume in compose["services"]["rabbitmq"]["volumes"]
    )
    mounted = {target: source for source, target in mounts.items()}
    plugins_file = root / "docker" / mounted["/etc/rabbitmq/enabled_plugins"]
    # An Erlang list of atoms ending with a period, as rabbitmq-plugins writes it.
    listed = re.fullmatch(r"\[([a-z0-9_,]+)\]\.\n?", plugins_file.read_text())
    assert listed, plugins_file.read_text()
    assert set(listed[1].split(",")) == {
        "rabbitmq_amqp1_0",
        "rabbitmq_management",  # the -management image's
        "rabbitmq_prometheus",  # every rabbitmq image's
    }


def _decoded(section: bytes) -> tuple[object, dict[object, object]]:
    """An encoded described value, as proton decodes it: its descriptor and its map."""
    data = Data()
    assert data.decode(section) == len(section)
    value = data.get_object()
    assert isinstance(value, Described)
    assert isinstance(value.value, dict)
    found: dict[object, object] = dict(value.value.items())
    return value.descriptor, found


@pytest.mark.parametrize(
    "properties",
    [
        {},
        {"message-id": "6F1C0E5A-0B1C-4D2E-8F30-415263748596", "correlation-id": "1"},
        # Past 255 bytes: a str32 value and a map32 around it.
        {"ebxml-ish": "é" * 300, "to-asid": "918000000002"},
        # Past 255 entries: a map32 of small strings.
        {f"k{i}": str(i) for i in range(200)},
    ],
)
def test_application_properties_are_encoded_as_amqp10_decodes_them(
    properties: dict[str, str],
) -> None:
    descriptor, value = _decoded(bytes(amqp10_application_properties(properties)))
    assert descriptor == 0x74  # application-properties
    assert value == properties
    assert all(type(k) is str and type(v) is str for k, v in value.items())
