"""Faults on real role processes (``python -m mhs serve ROLE``) over the real RabbitMQ and
Redis: a worker killed or stopped mid-delivery, broker connections closed by the server,
the inbound MHS down, and a short chaos run through every fault."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from mhs.chaos import rabbit_cluster
from mhs.chaos.cluster import ChaosConfig
from mhs.chaos.processes import RoleProcess
from mhs.chaos.rabbit import connections
from mhs.chaos.run import ChaosOptions, Sender, chaos
from mhs.chaos.tap import TapFaults
from mhs.simulate.plan import Planned, plan_traffic
from tests.broker.support import eventually
from tests.rabbitmq import left_behind, require_rabbitmqctl

from .conftest import Processes, ProcessesMaker
from .network import Link

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis]


@asynccontextmanager
async def sender(p: Processes) -> AsyncIterator[Sender]:
    async with aiohttp.ClientSession() as session:
        yield Sender(session, p.cluster.outbound_url, p.cluster.directory, p.tally)


def traffic(p: Processes, count: int, *, seed: int = 7) -> list[Planned]:
    """Messages between instances that share data: all should be delivered."""
    return plan_traffic(p.cluster.directory, count, refused_share=0.0, remote_share=0.0, seed=seed)


async def send_and_settle(p: Processes, planned: list[Planned], within_s: float = 60) -> None:
    async with sender(p) as s:
        await asyncio.gather(*(s.send(m) for m in planned))
    ids = [m.message_id for m in planned]
    assert set(ids) <= p.tally.accepted
    missing = await p.tally.wait_settled(ids, within_s=within_s)
    assert not missing, f"{len(missing)} messages never arrived"


def assert_delivered_once(p: Processes, planned: list[Planned]) -> None:
    for m in planned:
        assert p.tally.arrivals[m.message_id] == 1, m.message_id
        assert m.message_id not in p.tally.notices


async def test_a_worker_killed_mid_delivery_loses_nothing_and_counts_the_attempt(
    processes: ProcessesMaker,
) -> None:
    p = await processes(workers=1, inbound_replicas=1)
    p.cluster.tap.faults = TapFaults(latency_s=2.0)  # deliveries stay in flight a while
    planned = traffic(p, 12)
    (worker,) = p.cluster.named("worker")
    async with sender(p) as s:
        await asyncio.gather(*(s.send(m) for m in planned))
    await eventually(lambda: p.cluster.tap.counts["received"] >= 1)
    await worker.kill()
    p.cluster.tap.faults = TapFaults()
    await worker.start()
    missing = await p.tally.wait_settled([m.message_id for m in planned], within_s=60)
    assert not missing
    assert_delivered_once(p, planned)
    resumed = [e for e in p.cluster.log_events("worker") if e["event"] == "delivery.resumed"]
    assert resumed, "the restarted worker saw no redelivered message"
    assert all(e["attempt"] >= 1 for e in resumed)


async def test_sigterm_drains_the_worker_and_closes_its_connections(
    processes: ProcessesMaker,
) -> None:
    require_rabbitmqctl()
    p = await processes(workers=1, inbound_replicas=1)
    p.cluster.tap.faults = TapFaults(latency_s=1.5)
    planned = traffic(p, 6)
    (worker,) = p.cluster.named("worker")
    async with sender(p) as s:
        await asyncio.gather(*(s.send(m) for m in planned))
    await eventually(lambda: p.cluster.tap.counts["received"] >= 1)
    assert await worker.stop(within_s=30) == 0
    drained = [e for e in p.cluster.log_events("worker") if e["event"] == "worker.drained"]
    assert len(drained) == 1
    assert drained[0]["in_flight"] >= 1
    assert drained[0]["handed_back"] == 0
    assert await connections(worker.env["MHS_CONNECTION_NAME"]) == {}
    # What was in flight finished: everything arrived with no worker running now.
    missing = await p.tally.wait_settled([m.message_id for m in planned], within_s=30)
    assert not missing
    assert_delivered_once(p, planned)


async def test_server_side_connection_closes_are_survived_without_a_restart(
    processes: ProcessesMaker,
) -> None:
    require_rabbitmqctl()
    p = await processes(workers=1, inbound_replicas=1)
    planned = traffic(p, 60)
    async with sender(p) as s:
        sending = asyncio.gather(*(s.send(m) for m in planned[:30]))
        closed = await p.cluster.close_broker_connections()
        await sending
        # outbound, worker, inbound: the proxy has no broker connection
        assert len(closed) == 3
        await asyncio.gather(*(s.send(m) for m in planned[30:]))
    missing = await p.tally.wait_settled([m.message_id for m in planned], within_s=60)
    assert not missing
    assert_delivered_once(p, planned)
    for process in p.cluster.processes.values():
        assert (process.running, process.starts) == (True, 1), process.name


async def test_readiness_says_not_ready_while_the_broker_cannot_be_reached(
    processes: ProcessesMaker, rabbitmq_url: str
) -> None:
    parts = urlsplit(rabbitmq_url)
    link = Link(parts.hostname or "127.0.0.1", parts.port or 5672)
    await link.up()
    broker_url = urlunsplit(
        parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{link.port}")
    )
    p = await processes(workers=1, inbound_replicas=1, broker_url=broker_url)
    watched = [p.cluster.processes[name] for name in ("outbound", "worker-1", "inbound-1")]
    planned = traffic(p, 10)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        await link.cut()
        for process in watched:
            await eventually(lambda process=process: not_ready(process, session), within_s=30)
        async with sender(p) as s:
            # Refused with 503 (nothing accepted) and sent again until the broker is back.
            first = asyncio.create_task(s.send(planned[0]))
            await eventually(lambda: s.counts["sent_again_after_503"] >= 2, within_s=30)
            await link.up()
            await first
            await asyncio.gather(*(s.send(m) for m in planned[1:]))
        for process in watched:
            await eventually(lambda process=process: process.ready(session), within_s=30)
    missing = await p.tally.wait_settled([m.message_id for m in planned], within_s=60)
    assert not missing
    assert_delivered_once(p, planned)
    await link.cut()


async def not_ready(process: RoleProcess, session: aiohttp.ClientSession) -> bool:
    async with session.get(process.ready_url) as response:
        body = await response.json()
        return response.status == 503 and "broker not connected" in body["problems"]


async def test_inbound_down_longer_than_a_retry_interval(processes: ProcessesMaker) -> None:
    p = await processes(workers=1, inbound_replicas=1)
    (inbound,) = p.cluster.named("inbound")
    assert await inbound.stop() == 0
    planned = traffic(p, 16)
    async with sender(p) as s:
        await asyncio.gather(*(s.send(m) for m in planned))
    await eventually(lambda: p.cluster.tap.counts["replica_unreachable"] >= len(planned))
    await asyncio.sleep(3.0)  # two retry intervals of the slowest interaction (PT1.5S)
    await inbound.start()
    missing = await p.tally.wait_settled([m.message_id for m in planned], within_s=60)
    assert not missing
    assert_delivered_once(p, planned)
    scheduled = [
        e for e in p.cluster.log_events("worker") if e["event"] == "delivery.retry_scheduled"
    ]
    assert any(e["queue"] for e in scheduled), "no retry waited in a delay queue"
    assert any(not e["queue"] for e in scheduled), "no retry waited in the worker"


@pytest.mark.timeout(420)
async def test_a_short_chaos_run_through_every_fault_keeps_every_invariant(
    rabbitmq_url: str, redis_url: str, tmp_path: Path, unique: str
) -> None:
    require_rabbitmqctl()
    config = ChaosConfig(rabbitmq_url, redis_url, workdir=tmp_path / "chaos", run_id=unique)
    summary = await chaos(
        config,
        # 40 messages a phase, ~60 acknowledged first time in the two phases that drop
        # acks: at the default 5 % share about one short run in twenty dropped none (and
        # failed); at 20 % about one in a hundred thousand.
        ChaosOptions(messages=240, send_seconds=3.0, settle_timeout_s=90, drop_ack_share=0.2),
    )
    assert summary["ok"], summary
    assert summary["lost"] == 0
    assert summary["duplicates"] == 0
    assert summary["accepted"] == 240
    ended = sum(summary[k] for k in ("delivered", "rejected", "dead_lettered", "expired"))
    assert ended == 240
    assert summary["rejected"] > 0
    injected = summary["injected"]
    assert injected["worker_kills"] == 6
    assert injected["connections_closed"] > 0
    assert injected["inbound_outages"] == 2
    assert injected["tap_duplicates_sent_concurrently"] + injected["tap_duplicates_sent_after"] > 0
    assert injected["tap_acks_dropped"] > 0
    # Confirms lost at the inbound MHS: the message landed, and its retry came flagged.
    assert injected["confirms_lost"] > 0
    assert summary["observed"]["publishes_unconfirmed_at_inbound"] > 0
    assert summary["flagged_duplicates"] > 0
    assert sum(summary["observed"]["proxy_faults_injected"].values()) > 0
    assert summary["observed"]["duplicates_dropped_at_inbound"] > 0
    assert set(summary["graceful_exit_codes"].values()) == {0}
    # Nothing of the run is left on the broker but the replicas' reply queues, which expire.
    assert left_behind(config.queue_prefix) == []


@pytest.mark.timeout(420)
async def test_losing_rabbitmq_nodes_mid_load_loses_nothing(
    redis_url: str, tmp_path: Path, unique: str
) -> None:
    """Every role on a three-node cluster; the node leading the outbound queue stops for 5 s,
    then the one leading the busiest instance queue: nothing lost or duplicated, and every
    role's readiness was watched throughout."""
    nodes = rabbit_cluster.nodes(3)
    await asyncio.to_thread(rabbit_cluster.start, nodes)
    try:
        config = ChaosConfig(
            rabbit_cluster.broker_url(nodes),
            redis_url,
            workdir=tmp_path / "chaos",
            run_id=unique,
            rabbit_nodes=nodes,
        )
        summary = await chaos(
            config,
            ChaosOptions(
                messages=150, phases=("node-loss",), send_seconds=12.0, settle_timeout_s=90
            ),
        )
    finally:
        await asyncio.to_thread(rabbit_cluster.stop, nodes, remove=True)
    assert summary["ok"], summary
    assert (summary["lost"], summary["duplicates"], summary["accepted"]) == (0, 0, 150)
    assert summary["injected"]["nodes_stopped"] == 2
    [phase] = summary["phases"]
    assert set(phase["not_ready_s"]) >= {"outbound", "spine-proxy", "worker-1", "inbound-1"}


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--phases", "nodeloss"], "chaos: unknown phase 'nodeloss': choose from worker-kills,"),
        (["--phases", "node-loss"], "chaos: the node-loss phase runs on a RabbitMQ cluster"),
        (["--cluster", "--phases", "duplicates"], "chaos: with --cluster, only the node-loss"),
    ],
)
def test_a_phase_chaos_cannot_run_is_one_line_and_exit_2(args: list[str], line: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mhs.chaos", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(line)
    assert len(done.stderr.strip().splitlines()) == 1
