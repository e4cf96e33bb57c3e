"""A chaos run: traffic through every fault, each alone and then all together, and counts.

Every accepted message must end delivered exactly once, or rejected, dead-lettered or
expired with its sender told; ``lost`` and ``duplicates`` (copies after the first without
the ``mhs-possible-duplicate`` flag) must be 0; flagged duplicates are counted apart. Counts
come from what arrived on the instances' queues, never from the roles' own word.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from mhs.broker.factory import create_broker
from mhs.chaos.cluster import ChaosCluster, ChaosConfig
from mhs.chaos.doomed import Doomed
from mhs.chaos.node_loss import node_loss
from mhs.chaos.summary import observed, succeeded, summarise
from mhs.chaos.tap import TapFaults
from mhs.directory import Directory
from mhs.messages.queues import instance_queues
from mhs.simulate.plan import Planned, plan_traffic
from mhs.simulate.tally import Observer, Tally

PHASES = (
    "worker-kills",
    "connection-closes",
    "proxy-faults",
    "inbound-outage",
    "duplicates",
    "lost-confirms",
    "all-together",
    "node-loss",
)
# node-loss needs a RabbitMQ cluster; every other phase runs by default.
DEFAULT_PHASES = tuple(p for p in PHASES if p != "node-loss")
# Which faults each phase injects.
FAULTS: dict[str, frozenset[str]] = {
    "worker-kills": frozenset({"kills"}),
    "connection-closes": frozenset({"closes"}),
    "proxy-faults": frozenset({"proxy"}),
    "inbound-outage": frozenset({"outage"}),
    "duplicates": frozenset({"duplicates"}),
    "lost-confirms": frozenset({"confirms"}),
    "all-together": frozenset({"kills", "closes", "proxy", "outage", "duplicates", "confirms"}),
    # Only on a RabbitMQ cluster (--cluster): not one of the default phases.
    "node-loss": frozenset({"nodes"}),
}
PROXY_FAULTS: list[dict[str, Any]] = [
    {"kind": "http-status", "status": 500, "rate": 0.06, "attempts": 1},
    {"kind": "http-status", "status": 503, "rate": 0.06, "attempts": 2},
    {"kind": "soap-fault", "code": "206", "rate": 0.06, "attempts": 2},
    {"kind": "timeout", "rate": 0.02, "attempts": 1},
]
Log = Callable[[str], None]


@dataclass
class ChaosOptions:
    """How much traffic, and how hard to hit it."""

    messages: int = 600
    phases: tuple[str, ...] = DEFAULT_PHASES
    send_seconds: float = 5.0
    concurrency: int = 32
    kills: int = 3
    closes: int = 2
    outage_s: float | None = None
    duplicate_share: float = 0.15
    drop_ack_share: float = 0.05
    lost_confirms: int = 6
    kill_latency_s: float = 0.3
    settle_timeout_s: float = 120.0
    seed: int = 1


@dataclass
class Sender:
    """Sends as a hosted instance's system would: a 503 (nothing accepted) is sent again
    with the same Message-Id until accepted."""

    session: aiohttp.ClientSession
    url: str
    directory: Directory
    tally: Tally
    counts: Counter[str] = field(default_factory=Counter)

    async def send(self, planned: Planned) -> None:
        headers, body = planned.request(self.directory)
        for _ in range(120):
            try:
                async with self.session.post(self.url + "/", data=body, headers=headers) as answer:
                    await answer.read()
                    status: int | None = answer.status
            except (aiohttp.ClientError, TimeoutError):
                status = None
            if status == 202:
                self.tally.accepted.add(planned.message_id)
                return
            if status not in (None, 503):
                self.counts[f"refused_{status}"] += 1
                return
            self.counts["sent_again_after_503"] += 1
            await asyncio.sleep(0.25)
        self.counts["never_accepted"] += 1


class Run:
    """One chaos run over a started cluster."""

    def __init__(
        self,
        cluster: ChaosCluster,
        options: ChaosOptions,
        tally: Tally,
        sender: Sender,
        log: Log,
    ) -> None:
        self.cluster = cluster
        self.options = options
        self.tally = tally
        self.sender = sender
        self.log = log
        self.doomed = Doomed.pick(cluster.directory)
        self.expected: dict[str, str] = {}
        self.injected: Counter[str] = Counter()
        # node-loss: each role process's longest time not ready.
        self.not_ready_s: dict[str, float] = {}

    def outage_s(self) -> float:
        if self.options.outage_s is not None:
            return self.options.outage_s
        longest = max(
            i.reliability.retry_interval.total_seconds()
            for i in self.cluster.directory.interactions.values()
        )
        return max(3.0, 2 * longest)

    async def phase(self, name: str, planned: list[Planned]) -> dict[str, Any]:
        faults = FAULTS[name]
        options = self.options
        tap = self.cluster.tap
        before_tap = Counter(tap.counts)
        before = Counter(self.injected)
        for p in planned:
            self.expected[p.message_id] = self.doomed.expect(p, active="proxy" in faults)
        if "proxy" in faults:
            await self.cluster.set_proxy_faults([*PROXY_FAULTS, *self.doomed.rules])
        tap.faults = TapFaults(
            duplicate_share=options.duplicate_share if "duplicates" in faults else 0.0,
            drop_ack_share=options.drop_ack_share if "duplicates" in faults else 0.0,
            # Latency keeps messages in flight in the workers when they are killed.
            latency_s=options.kill_latency_s if "kills" in faults else 0.0,
        )
        started = time.monotonic()
        self.log(f"phase {name}: {len(planned)} messages")
        actions = [self._send_all(planned)]
        if "kills" in faults:
            actions.append(self._kills(started))
        if "closes" in faults:
            actions.append(self._closes(started))
        if "outage" in faults:
            actions.append(self._outage(started))
        if "confirms" in faults:
            actions.append(self._lose_confirms(started))
        if "nodes" in faults:
            actions.append(self._lose_nodes(started, planned))
        await asyncio.gather(*actions)
        tap.faults = TapFaults()
        sent = [p.message_id for p in planned if p.message_id in self.tally.accepted]
        missing = await self.tally.wait_settled(sent, within_s=options.settle_timeout_s)
        if "proxy" in faults:
            await self.cluster.clear_proxy_faults()
        outcome = summarise([p.message_id for p in planned], self.tally, self.expected)
        if "nodes" in faults:
            outcome["not_ready_s"] = self.not_ready_s
        outcome.update(
            phase=name,
            seconds=round(time.monotonic() - started, 1),
            unsettled_after_timeout=len(missing),
            injected={
                **(self.injected - before),
                **{
                    f"tap_{k}": v
                    for k, v in (Counter(tap.counts) - before_tap).items()
                    if k != "received"
                },
            },
        )
        return outcome

    async def _send_all(self, planned: list[Planned]) -> None:
        """Send at an even pace over ``send_seconds``, so the faults meet traffic in flow."""
        gate = asyncio.Semaphore(self.options.concurrency)
        started = time.monotonic()
        step = self.options.send_seconds / max(1, len(planned))

        async def one(index: int, p: Planned) -> None:
            await asyncio.sleep(max(0.0, started + index * step - time.monotonic()))
            async with gate:
                await self.sender.send(p)

        await asyncio.gather(*(one(index, p) for index, p in enumerate(planned)))

    async def _at(self, started: float, fraction: float) -> None:
        await asyncio.sleep(
            max(0.0, started + self.options.send_seconds * fraction - time.monotonic())
        )

    async def _kills(self, started: float) -> None:
        kills = self.options.kills
        worker = self.cluster.named("worker-1")[0]
        for n in range(kills):
            await self._at(started, (n + 1) / (kills + 1))
            await worker.kill()
            self.injected["worker_kills"] += 1
            self.log(f"  killed {worker.name} (SIGKILL)")
            await asyncio.sleep(0.3)
            await worker.start()

    async def _closes(self, started: float) -> None:
        closes = self.options.closes
        for n in range(closes):
            await self._at(started, (n + 0.5) / closes)
            closed = await self.cluster.close_broker_connections()
            self.injected["connection_close_rounds"] += 1
            self.injected["connections_closed"] += len(closed)
            self.log(f"  closed {len(closed)} broker connections from the server side")

    async def _lose_confirms(self, started: float) -> None:
        """Lose the confirms of publishes to the instance queues and the outbound queue, in
        turn: RabbitMQ queues each, the role never hears so."""
        settings, link = self.cluster.settings, self.cluster.confirm_loss
        queues = set(instance_queues(settings, self.cluster.directory))
        times = self.options.lost_confirms
        for n in range(times):
            await self._at(started, (n + 0.5) / times)
            link.arm(settings.outbound_queue if n % 2 else queues.__contains__)
            self.injected["confirms_to_lose"] += 1
        await self._at(started, 1.0)
        link.disarm()
        self.injected["confirms_lost"] = link.lost

    async def _lose_nodes(self, started: float, planned: list[Planned]) -> None:
        settings = self.cluster.settings
        busiest = Counter(p.recipient.asid for p in planned).most_common(1)[0][0]
        queues = (settings.outbound_queue, settings.inbound_queue(busiest))
        stopped, self.not_ready_s = await node_loss(
            list(self.cluster.processes.values()), self.cluster.config.rabbit_nodes, queues,
            at=lambda fraction: self._at(started, fraction), hold_s=5.0, log=self.log,
        )  # fmt: skip
        self.injected["nodes_stopped"] += stopped

    async def _outage(self, started: float) -> None:
        await self._at(started, 0.3)
        replicas = self.cluster.named("inbound")
        down = time.monotonic()
        await asyncio.gather(*(replica.stop() for replica in replicas))
        self.log(f"  inbound down ({len(replicas)} replicas)")
        await asyncio.sleep(max(0.0, down + self.outage_s() - time.monotonic()))
        await asyncio.gather(*(replica.start() for replica in replicas))
        self.injected["inbound_outages"] += 1
        self.injected["inbound_down_ms"] += round((time.monotonic() - down) * 1000)
        self.log(f"  inbound back after {time.monotonic() - down:.1f}s")


async def chaos(
    config: ChaosConfig, options: ChaosOptions, log: Log = lambda _: None
) -> dict[str, Any]:
    """Run every phase in ``options`` and return the summary (``ok`` says if it held)."""
    unknown = set(options.phases) - set(PHASES)
    if unknown:
        raise ValueError(f"unknown phases {sorted(unknown)}: choose from {', '.join(PHASES)}")
    if "node-loss" in options.phases and not config.rabbit_nodes:
        raise ValueError("the node-loss phase runs on a RabbitMQ cluster: add --cluster")
    config.lose_confirms = any("confirms" in FAULTS[name] for name in options.phases)
    cluster = ChaosCluster(config)
    directory = cluster.directory
    planned = plan_traffic(
        directory, options.messages, refused_share=0.05, remote_share=0.0, seed=options.seed
    )
    observer_broker = create_broker(
        config.broker_url, connection_name=f"observer-{config.connection_prefix}"
    )
    tally = Tally()
    started = time.monotonic()
    await observer_broker.start()
    observer = Observer(
        observer_broker,
        instance_queues(cluster.settings, directory),
        tally,
    )
    phases: list[dict[str, Any]] = []
    try:
        await observer.start()
        log(f"starting the roles (logs in {config.workdir})")
        await cluster.start()
        run, sender = await _phases(cluster, options, tally, planned, phases=phases, log=log)
        # Late copies would show here as duplicates: give them a moment to arrive.
        await asyncio.sleep(1.0)
        dead_letter_depth = await observer_broker.queue_depth(cluster.settings.dead_letter_queue)
        exit_codes = await cluster.stop()
    finally:
        await observer.stop()
        with contextlib.suppress(Exception):
            await cluster.close()
        with contextlib.suppress(Exception):
            await cluster.remove_traces(observer_broker)
        await observer_broker.stop()
    summary = summarise((p.message_id for p in planned), tally, run.expected)
    summary.update(
        messages=len(planned),
        injected=_injected(run, cluster, options),
        observed=observed(cluster),
        sending=dict(sender.counts),
        dead_letter_queue=dead_letter_depth,
        graceful_exit_codes=exit_codes,
        phases=phases,
        elapsed_s=round(time.monotonic() - started, 1),
        logs=str(config.workdir),
    )
    summary["ok"] = succeeded(summary)
    return summary


def _injected(run: Run, cluster: ChaosCluster, options: ChaosOptions) -> dict[str, Any]:
    """The faults the run injected: its own, the tap's and the proxy's rules."""
    injected: dict[str, Any] = dict(run.injected)
    injected.update(
        {
            f"tap_{k}": v
            for k, v in cluster.tap.counts.items()
            if k not in ("forwarded", "received")
        },
        proxy_fault_rules=(
            [*PROXY_FAULTS, *run.doomed.rules]
            if any("proxy" in FAULTS[name] for name in options.phases)
            else []
        ),
        outage_s=run.outage_s(),
    )
    return injected


async def _phases(
    cluster: ChaosCluster,
    options: ChaosOptions,
    tally: Tally,
    planned: list[Planned],
    *,
    phases: list[dict[str, Any]],
    log: Log,
) -> tuple[Run, Sender]:
    """Send an equal share of ``planned`` through each phase in turn, appending each
    phase's counts to ``phases``."""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=options.concurrency),
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:
        sender = Sender(session, cluster.outbound_url, cluster.directory, tally)
        run = Run(cluster, options, tally, sender, log)
        share = len(planned) // len(options.phases)
        for index, name in enumerate(options.phases):
            last = index == len(options.phases) - 1
            chunk = planned[index * share : None if last else (index + 1) * share]
            phases.append(await run.phase(name, chunk))
    return run, sender
