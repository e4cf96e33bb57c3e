"""Role tests: real role applications on port 0, talking over real RabbitMQ and HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs

from mhs.broker import Broker, Delivery
from mhs.broker.factory import create_broker
from mhs.directory import Directory, load_topology
from mhs.ebxml import MessageHeader, SpineReply, build_request, classify_reply
from mhs.ids import new_id
from mhs.messages.queues import declare_known, delete_namespace_queues
from mhs.runner import ROLES, Cluster, RoleName
from mhs.settings import Settings

HL7 = (
    '<hl7:RCMR_IN010000UK05 xmlns:hl7="urn:hl7-org:v3">'
    '<hl7:id root="{id}"/></hl7:RCMR_IN010000UK05>'
)


def inbound_header(**changes: Any) -> MessageHeader:
    """An ebXML header for a message to the inbound MHS: a GP2GP extract from hosted
    practice A80001 to A80002, new ids, no reliability flags, unless ``changes`` say else."""
    fields: dict[str, Any] = {
        "from_party_id": "A80001-0000001",
        "to_party_id": "A80002-0000002",
        "cpa_id": "S918000000002",
        "conversation_id": new_id(),
        "service": "urn:nhs:names:services:gp2gp",
        "action": "RCMR_IN010000UK05",
        "message_id": new_id(),
        "timestamp": "2026-01-01T00:00:00Z",
    }
    return MessageHeader(**{**fields, **changes})


@dataclass
class Harness:
    """A running set of roles plus a client broker connection to look at queues."""

    cluster: Cluster
    broker: Broker
    directory: Directory
    http: aiohttp.ClientSession
    logs: list[MutableMapping[str, Any]]

    @property
    def settings(self) -> Settings:
        return self.cluster.settings

    def url(self, role: str) -> str:
        return self.cluster.urls[role]

    def token(self, asid: str) -> str:
        token = self.directory.credential_for(asid)
        assert token is not None
        return token

    async def send(
        self,
        sender: str,
        *,
        ods_code: str | None,
        interaction: str = "RCMR_IN010000UK05",
        message_id: str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> aiohttp.ClientResponse:
        base = {
            "Authorization": f"Bearer {self.token(sender)}",
            "Interaction-Id": interaction,
            "wait-for-response": "false",
            "Content-Type": "application/json",
        }
        if ods_code is not None:
            base["ods-code"] = ods_code
        if message_id is not None:
            base["Message-Id"] = message_id
        base.update(headers or {})
        payload = (
            body
            if body is not None
            else orjson.dumps({"payload": HL7.format(id=message_id or "x")})
        )
        async with self.http.post(
            self.url("outbound") + "/", data=payload, headers=base
        ) as response:
            await response.read()
            return response

    async def post_ebxml(self, header: MessageHeader, payload: str) -> tuple[int, SpineReply]:
        """POST an ebXML message straight to the inbound MHS, as Spine would: the status
        and what the answer is."""
        body, content_type = build_request(header, payload)
        async with self.http.post(
            self.url("inbound") + "/reliablemessaging",
            data=body,
            headers={"Content-Type": content_type},
        ) as response:
            return response.status, classify_reply(response.content_type, await response.read())

    async def take(self, queue: str, within_s: float = 10.0) -> Delivery:
        """The next message on ``queue`` (acked), failing after ``within_s``."""
        # Declared first, as the instance's own system would, so polling never meets a
        # queue that does not exist yet.
        await declare_known(self.broker, self.settings, queue)
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            delivery = await self.broker.get(queue)
            if delivery is not None:
                await delivery.ack()
                return delivery
            await asyncio.sleep(0.02)
        raise AssertionError(f"nothing arrived on {queue} within {within_s}s")

    async def add_fault(self, **rule: Any) -> None:
        """Add a fault rule to the Spine proxy (201 expected)."""
        async with self.http.post(self.url("spine-proxy") + "/_admin/faults", json=rule) as answer:
            assert answer.status == 201, await answer.text()

    async def depth(self, queue: str) -> int:
        await declare_known(self.broker, self.settings, queue)
        return await self.broker.queue_depth(queue)

    def events(self, name: str) -> list[MutableMapping[str, Any]]:
        return [entry for entry in self.logs if entry.get("event") == name]

    def events_for(self, name: str, message_id: str) -> list[MutableMapping[str, Any]]:
        return [entry for entry in self.events(name) if entry.get("message_id") == message_id]

    async def logged(
        self, name: str, message_id: str, within_s: float = 20.0
    ) -> list[MutableMapping[str, Any]]:
        """The ``name`` events for ``message_id``, once there is one (failing after
        ``within_s``): a role can log after the effect a test saw, as the worker logs a
        delivery only once the acknowledgment is back, after the message reached its queue."""
        deadline = time.monotonic() + within_s
        while True:
            found = self.events_for(name, message_id)
            if found:
                return found
            assert time.monotonic() < deadline, f"no {name} for {message_id} in {within_s}s"
            await asyncio.sleep(0.02)


@pytest.fixture
async def harness_factory(rabbitmq_url: str, unique: str) -> AsyncIterator[Callable[..., object]]:
    """Start roles on the real broker (``memory=True``: the embedded one); capture their logs."""
    started: list[Harness] = []
    with capture_logs() as logs:

        async def start(
            roles: Sequence[RoleName] = ROLES,
            *,
            directory: Directory | None = None,
            memory: bool = False,
            extra_inbound: Sequence[str] = (),
            **overrides: object,
        ) -> Harness:
            defaults: dict[str, object] = {
                "broker_url": None if memory else rabbitmq_url,
                "queue_prefix": f"test-{unique}.",
                "shutdown_timeout_s": 3.0,
                "delivery_timeout_s": 3.0,
                "forward_timeout_s": 2.0,
            }
            # The roles may reach RabbitMQ another way (a faulty link); the harness's own
            # connection, for looking at queues, goes straight to it.
            settings = Settings(**{**defaults, **overrides})  # type: ignore[arg-type]
            directory = directory or load_topology()
            cluster = Cluster(settings, directory, ephemeral_ports=True)
            await cluster.start(roles, extra_inbound=extra_inbound)
            broker = cluster.shared_broker or create_broker(
                rabbitmq_url, connection_name="mhs-test-client"
            )
            if cluster.shared_broker is None:
                await broker.start()
            harness = Harness(cluster, broker, directory, aiohttp.ClientSession(), logs)
            started.append(harness)
            return harness

        yield start
        for harness in started:
            await harness.http.close()
            await delete_namespace_queues(harness.broker, harness.settings, harness.directory)
            if harness.cluster.shared_broker is None:
                await harness.broker.stop()
            await harness.cluster.stop()
