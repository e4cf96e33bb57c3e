"""Fault suite fixtures: roles in-process (the role harness) or as real processes (chaos),
on the real RabbitMQ and Redis, with everything they leave behind removed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from mhs.broker.factory import create_broker
from mhs.chaos.cluster import ChaosCluster, ChaosConfig
from mhs.directory import Directory
from mhs.directory.catalogue import set_reliability
from mhs.directory.loader import DEFAULT_TOPOLOGY, parse_topology
from mhs.ebxml import MessageHeader, build_request
from mhs.messages.records import OutboundRecord
from mhs.simulate.tally import Observer, Tally
from tests.roles.conftest import Harness, harness_factory

__all__ = ["harness_factory"]

SENDER = "918000000001"  # A80001, region 1
RECIPIENT = "918000000002"  # A80002, region 1: they share data
GP2GP_REQUEST = "RCMR_IN010000UK05"


def topology_with(interaction: str = GP2GP_REQUEST, **rules: object) -> Directory:
    """The packaged topology with ``interaction``'s reliability changed."""
    raw = yaml.safe_load(resources.files("mhs.directory").joinpath(DEFAULT_TOPOLOGY).read_text())
    set_reliability(raw, interaction, **rules)
    return Directory(parse_topology(raw, "<test>"), source="<test topology>")


def record(
    directory: Directory,
    message_id: str,
    *,
    sender: str = SENDER,
    recipient: str = RECIPIENT,
    interaction: str = GP2GP_REQUEST,
    accepted_at: float | None = None,
) -> OutboundRecord:
    """What the outbound MHS queues for a message from ``sender`` to ``recipient``."""
    frm, to = directory.by_asid(sender), directory.by_asid(recipient)
    assert frm is not None
    assert to is not None
    return OutboundRecord.stamped(
        frm,
        to,
        message_id=message_id,
        interaction_id=interaction,
        payload=f'<hl7:{interaction} xmlns:hl7="urn:hl7-org:v3"/>',
        accepted_at=accepted_at,
    )


def ebxml(message_id: str, *, duplicate_elimination: bool = True) -> tuple[bytes, str]:
    """A reliable GP2GP request from A80001 to A80002 as Spine posts it: body, content type."""
    header = MessageHeader(
        from_party_id="A80001-0000001",
        to_party_id="A80002-0000002",
        cpa_id="S918000000002",
        conversation_id=message_id,
        service="urn:nhs:names:services:gp2gp",
        action="RCMR_IN010000UK05",
        message_id=message_id,
        timestamp="2026-01-01T00:00:00Z",
        duplicate_elimination=duplicate_elimination,
        ack_requested=True,
    )
    return build_request(header, "<x/>")


HarnessMaker = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def harness(harness_factory: Callable[..., Any]) -> AsyncIterator[HarnessMaker]:
    """``harness_factory``, also removing the delay queues the roles declared."""
    made: list[Harness] = []

    async def make(*args: Any, **kwargs: Any) -> Harness:
        h: Harness = await harness_factory(*args, **kwargs)
        made.append(h)
        return h

    yield make
    for h in made:
        for interaction in h.directory.interactions.values():
            interval = interaction.reliability.retry_interval.total_seconds()
            await h.broker.delete_queue(h.settings.delay_queue(max(1, round(interval * 1000))))


class Processes:
    """A chaos cluster of real role processes, and an observer of the instance queues."""

    def __init__(self, cluster: ChaosCluster, tally: Tally) -> None:
        self.cluster = cluster
        self.tally = tally


ProcessesMaker = Callable[..., Awaitable[Processes]]


@pytest.fixture
async def processes(
    rabbitmq_url: str, redis_url: str, unique: str, tmp_path: Path
) -> AsyncIterator[ProcessesMaker]:
    """Start role processes (``ChaosConfig`` fields as keywords); everything is removed after."""
    observer_broker = create_broker(rabbitmq_url, connection_name=f"observer-test-{unique}")
    await observer_broker.start()
    started: list[tuple[ChaosCluster, Observer]] = []

    async def start(**config: Any) -> Processes:
        defaults: dict[str, Any] = {
            "broker_url": rabbitmq_url,
            "state_url": redis_url,
            "workdir": tmp_path / f"run-{len(started)}",
            "run_id": f"{unique}-{len(started)}",
        }
        cluster = ChaosCluster(ChaosConfig(**{**defaults, **config}))
        tally = Tally()
        observer = Observer(
            observer_broker,
            [cluster.settings.inbound_queue(p.asid) for p in cluster.directory.parties],
            tally,
        )
        started.append((cluster, observer))
        await observer.start()
        await cluster.start()
        return Processes(cluster, tally)

    yield start
    for cluster, observer in started:
        await observer.stop()
        await cluster.close()
        await cluster.remove_traces(observer_broker)
    await observer_broker.stop()
