"""The node-loss fault (``scripts/chaos --cluster --phases node-loss``): the roles run on a
three-node RabbitMQ cluster (scripts/cluster) and, mid-load, the node leading the outbound
queue stops, and later the one leading the busiest instance queue; each comes back after
a hold. Meanwhile every role's ``/readyz`` is polled, so the run says how long each was not
ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from mhs.chaos import rabbit_cluster
from mhs.chaos.processes import RoleProcess
from mhs.chaos.rabbit_cluster import Node

POLL_S = 0.1


@dataclass
class Readiness:
    """For each role process, the longest stretch it answered not ready (or not at all)."""

    longest_s: dict[str, float] = field(default_factory=dict)
    _since: dict[str, float] = field(default_factory=dict)

    def saw(self, name: str, ready: bool, now: float) -> None:
        self.longest_s.setdefault(name, 0.0)
        if ready:
            since = self._since.pop(name, None)
            if since is not None:
                self.longest_s[name] = max(self.longest_s.get(name, 0.0), now - since)
        else:
            self._since.setdefault(name, now)

    def close(self, now: float) -> dict[str, float]:
        for name in list(self._since):
            self.saw(name, True, now)
        return {name: round(s, 2) for name, s in sorted(self.longest_s.items())}


async def watch_readiness(
    processes: Sequence[RoleProcess], readiness: Readiness, stop: asyncio.Event
) -> None:
    """Poll every process's ``/readyz`` until ``stop`` is set."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        while not stop.is_set():
            now = time.monotonic()
            for process in processes:
                ready = await process.ready(session)
                readiness.saw(process.name, ready, now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)


async def lose_leader(
    nodes: list[Node],
    queue: str,
    hold_s: float,
    log: Callable[[str], None],
) -> str | None:
    """Stop the node leading ``queue`` for ``hold_s``, then start it again; its name (None
    if no node leads it)."""
    leaders = await asyncio.to_thread(rabbit_cluster.leaders, nodes, queue)
    node = leaders.get(queue)
    if node is None:
        return None
    await asyncio.to_thread(rabbit_cluster.pause, node)
    log(f"  stopped {node.name}, leader of {queue}")
    await asyncio.sleep(hold_s)
    await asyncio.to_thread(rabbit_cluster.resume, node)
    log(f"  started {node.name} again")
    return node.name


async def node_loss(
    processes: Sequence[RoleProcess],
    nodes: list[Node],
    queues: tuple[str, str],
    *,
    at: Callable[[float], Awaitable[None]],
    hold_s: float,
    log: Callable[[str], None],
) -> tuple[int, dict[str, float]]:
    """Lose the leader of ``queues[0]`` at 20 % of the phase and of ``queues[1]`` at 60 %;
    how many nodes were stopped, and each process's longest time not ready meanwhile."""
    readiness, stop = Readiness(), asyncio.Event()
    watcher = asyncio.create_task(watch_readiness(processes, readiness, stop))
    stopped = 0
    try:
        for fraction, queue in zip((0.2, 0.6), queues, strict=True):
            await at(fraction)
            stopped += await lose_leader(nodes, queue, hold_s, log) is not None
    finally:
        stop.set()
        await watcher
    return stopped, readiness.close(time.monotonic())
