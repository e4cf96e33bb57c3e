"""Running a simulation: start the roles, inject faults, send, watch the queues, count."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from mhs.broker import Broker, Delivery
from mhs.broker.factory import broker_for
from mhs.directory import Directory
from mhs.messages.queues import delete_namespace_queues, instance_queues
from mhs.runner import Cluster
from mhs.settings import Settings
from mhs.simulate.plan import Planned, plan_traffic
from mhs.simulate.tally import Observer, Tally

Progress = Callable[[str, int], None]


@dataclass
class SimulationOptions:
    """What to simulate."""

    messages: int = 2000
    concurrency: int = 64
    workers: int = 2
    first_attempt_failure_rate: float = 0.1
    soap_fault_rate: float = 0.03
    refused_share: float = 0.1
    settle_timeout_s: float = 60.0
    seed: int = 1


@dataclass
class _Timing:
    """When each message was sent and first arrived, and which arrived after a retry."""

    sent_at: dict[str, float] = field(default_factory=dict)
    arrived_at: dict[str, float] = field(default_factory=dict)
    retried: set[str] = field(default_factory=set)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 3)


async def _set_faults(
    session: aiohttp.ClientSession, proxy_url: str, opts: SimulationOptions
) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    if opts.first_attempt_failure_rate > 0:
        rules.append(
            {
                "kind": "http-status",
                "status": 503,
                "rate": opts.first_attempt_failure_rate,
                "attempts": 1,
            }
        )
    if opts.soap_fault_rate > 0:
        rules.append(
            {"kind": "soap-fault", "code": "206", "rate": opts.soap_fault_rate, "attempts": 2}
        )
    installed = []
    for rule in rules:
        async with session.post(f"{proxy_url}/_admin/faults", json=rule) as response:
            response.raise_for_status()
            installed.append(await response.json())
    return installed


async def _send(
    session: aiohttp.ClientSession,
    outbound_url: str,
    directory: Directory,
    planned: Planned,
    *,
    tally: Tally,
    timing: _Timing,
) -> None:
    headers, body = planned.request(directory)
    timing.sent_at[planned.message_id] = time.perf_counter()
    tally.sent += 1
    async with session.post(outbound_url + "/", data=body, headers=headers) as response:
        await response.read()
        if response.status == 202:
            tally.accepted.add(planned.message_id)
        else:
            tally.refused[str(response.status)] += 1


async def simulate(
    settings: Settings,
    directory: Directory,
    opts: SimulationOptions,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run one simulation and return its summary."""
    run_id = uuid.uuid4().hex[:8]
    settings = settings.model_copy(
        update={"queue_prefix": f"{settings.queue_prefix}sim-{run_id}.", "shutdown_timeout_s": 5.0}
    )
    planned = plan_traffic(
        directory, opts.messages, refused_share=opts.refused_share, seed=opts.seed
    )
    remote = [m.name for m in directory.topology.mhs if not m.hosted]
    cluster = Cluster(settings, directory, ephemeral_ports=True)
    await cluster.start(workers=opts.workers, extra_inbound=remote)
    if progress:
        progress("started", 0)
    # The instances' own systems read their queues over their own broker connection.
    client: Broker = cluster.shared_broker or broker_for(settings, "simulate-instances")
    if cluster.shared_broker is None:
        await client.start()
    tally, timing = Tally(), _Timing()
    queues = instance_queues(settings, directory)
    observer = Observer(client, queues, tally, _listener(timing, progress))
    try:
        await observer.start()
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=opts.concurrency)
        ) as session:
            faults = await _set_faults(session, cluster.urls["spine-proxy"], opts)
            started = time.perf_counter()
            gate = asyncio.Semaphore(opts.concurrency)

            async def send_one(p: Planned) -> None:
                async with gate:
                    await _send(
                        session, cluster.urls["outbound"], directory, p, tally=tally, timing=timing
                    )
                if progress:
                    progress("sent", 1)

            await asyncio.gather(*(send_one(p) for p in planned))
            await tally.wait_settled(tally.accepted, within_s=opts.settle_timeout_s)
            # A short grace period so late duplicates, if any, are seen and counted.
            await asyncio.sleep(0.5)
            last = max([*timing.arrived_at.values(), started])
    finally:
        await observer.stop()
        await delete_namespace_queues(client, settings, directory)
        if cluster.shared_broker is None:
            await client.stop()
        await cluster.stop()
    return _summary(planned, tally, timing, faults=faults, started=started, last=last, opts=opts)


def _listener(timing: _Timing, progress: Progress | None) -> Callable[[Delivery, bool], None]:
    def heard(delivery: Delivery, arrived: bool) -> None:
        message_id = (delivery.message_id or "").upper()
        if arrived:
            timing.arrived_at.setdefault(message_id, time.perf_counter())
            attempt = delivery.headers.get("mhs-attempt")
            if isinstance(attempt, int) and attempt > 1:
                timing.retried.add(message_id)
        if progress:
            progress("settled", 1)

    return heard


def _summary(
    planned: list[Planned],
    tally: Tally,
    timing: _Timing,
    *,
    faults: list[dict[str, Any]],
    started: float,
    last: float,
    opts: SimulationOptions,
) -> dict[str, Any]:
    accepted = tally.accepted
    delivered = {m for m in accepted if tally.arrivals[m] > 0}
    notices = {m: o[0] for m, o in tally.notices.items() if m in accepted and m not in delivered}
    rejected = sum(1 for o in notices.values() if o == "rejected")
    dead = sum(1 for o in notices.values() if o != "rejected")
    latencies = [(timing.arrived_at[m] - timing.sent_at[m]) * 1000 for m in delivered]
    expected = {p.message_id: p.expect for p in planned}
    mismatched = sum(
        1
        for m in accepted
        if (m in delivered and expected[m] != "deliver")
        or (notices.get(m) == "rejected" and expected[m] != "reject")
    )
    elapsed = max(last - started, 1e-9)
    return {
        "messages": len(planned),
        "accepted": len(accepted),
        "refused_at_outbound": sum(tally.refused.values()),
        "delivered": len(delivered),
        "rejected": rejected,
        "dead_lettered": dead,
        "retried": len(timing.retried),
        "lost": sum(1 for m in accepted if not tally.settled(m)),
        "duplicates": sum(1 for m in delivered if tally.unflagged_duplicate(m)),
        "flagged_duplicates": sum(1 for m in delivered if tally.flagged_duplicate(m)),
        "unexpected_outcomes": mismatched,
        "p50_ms": _percentile(latencies, 0.5),
        "p99_ms": _percentile(latencies, 0.99),
        "messages_per_s": round(len(accepted) / elapsed, 1),
        "elapsed_s": round(elapsed, 3),
        "instances": len({p.sender.asid for p in planned} | {p.recipient.asid for p in planned}),
        "workers": opts.workers,
        "faults": faults,
        "rejection_reasons": dict(tally.reasons.most_common(10)),
    }


def succeeded(summary: dict[str, Any]) -> bool:
    """The invariants every simulation must keep."""
    return bool(
        summary["lost"] == 0
        and summary["duplicates"] == 0
        and summary["accepted"]
        == summary["delivered"] + summary["rejected"] + summary["dead_lettered"]
        and summary["unexpected_outcomes"] == 0
    )
