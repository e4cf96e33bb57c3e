"""What each change bought: the product's CPU per message at several git revisions, run
in turns on one machine, each figure divided by the driver's own CPU per message.

    scripts/dev python scripts/bench_levers.py REV [REV ...] [--rounds 3] [--messages 5000]
    scripts/dev python scripts/bench_levers.py ba085ac HEAD --state-url redis://127.0.0.1:6379/0

Each revision is checked out into a temporary git worktree and its four roles run from
there (``scripts/bench.py``'s product, one process per role, on RabbitMQ), driven by this
process. The revisions take turns, round after round, so a machine that slows down or
speeds up during the run (a shared host does) moves every revision alike.

Why divide by the driver: this machine's speed moves by ±15 % from minute to minute, and
the driver's work per message (POSTing it, consuming it from its queue) is the same at
every revision, so ``roles / driver`` compares revisions where raw microseconds do not.
The figures printed are those ratios, and microseconds at the driver's median cost.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402 - the bench's product and driver, as a sibling script

from mhs.broker.factory import create_broker  # noqa: E402

ROLES = ("inbound", "spine-proxy", "worker", "outbound")


@contextlib.contextmanager
def worktrees(revisions: list[str]) -> Iterator[dict[str, Path]]:
    """Each revision checked out (detached) under a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="mhs-levers-") as tmp:
        trees: dict[str, Path] = {}
        try:
            for revision in revisions:
                tree = Path(tmp) / f"{len(trees)}-{revision.replace('/', '_')}"
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree),
                     revision],
                    check=True, capture_output=True,
                )  # fmt: skip
                trees[revision] = tree
            yield trees
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False, capture_output=True,
                )  # fmt: skip


async def measure(
    tree: Path, args: argparse.Namespace, session: aiohttp.ClientSession
) -> dict[str, float]:
    """CPU microseconds per message of each role, RabbitMQ and the driver, for one run of
    the product at ``tree``."""
    run = uuid.uuid4().hex[:8]
    client = create_broker(args.broker, connection_name=f"mhs-levers-{run}")
    await client.start()
    driver = bench.Driver(client, session)
    queues: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mhs-levers-logs-") as logs:
            async with bench.product(
                session, args.broker, f"levers-{run}.", args.size, Path(logs),
                state_url=args.state_url, root=tree,  # the roles run the revision's code
            ) as system:  # fmt: skip
                queues += system.owned
                await driver.watch(system.queues)
                await driver.run(system.url, list(system.messages(args.warmup)), concurrency=64)
                before = system.cpu_s()
                load = await driver.run(
                    system.url, list(system.messages(args.messages)), concurrency=64
                )
                after = system.cpu_s()
    finally:
        await driver.unwatch()
        for queue in queues:
            with contextlib.suppress(Exception):
                await client.delete_queue(queue)
        await client.stop()
    if load.arrived < args.messages:
        raise SystemExit(f"{tree.name}: {args.messages - load.arrived} messages did not arrive")
    return bench.cpu_us_per_message(before, after, load.arrived)


async def levers(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {revision: [] for revision in args.revisions}
    with worktrees(args.revisions) as trees:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
            for round_number in range(1, args.rounds + 1):
                for revision, tree in trees.items():
                    figures = await measure(tree, args, session)
                    runs[revision].append(figures)
                    roles = sum(figures[r] for r in ROLES)
                    print(
                        f"round {round_number} {revision}: roles {roles:.0f} us, driver "
                        f"{figures['driver']:.0f} us, ratio {roles / figures['driver']:.3f}",
                        file=sys.stderr,
                    )
    driver_us = statistics.median(f["driver"] for r in runs.values() for f in r)
    by_revision: dict[str, dict[str, Any]] = {}
    for revision, measured in runs.items():
        ratios = [sum(f[r] for r in ROLES) / f["driver"] for f in measured]
        by_revision[revision] = {
            "roles_per_driver": round(statistics.mean(ratios), 3),
            "each_round": [round(x, 3) for x in ratios],
            "us_at_median_driver": {
                part: round(statistics.mean(f[part] / f["driver"] for f in measured) * driver_us)
                for part in (*ROLES, "rabbitmq")
            },
        }
    first = by_revision[args.revisions[0]]["roles_per_driver"]
    for entry in by_revision.values():
        entry["change_from_first"] = round(entry["roles_per_driver"] / first - 1, 3)
    return {"rounds": args.rounds, "messages": args.messages, "revisions": by_revision}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="+", help="git revisions, the first the baseline")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--state-url", default=None, help="the product's MHS_STATE_URL")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--size", type=int, default=1024, help="HL7 payload bytes")
    args = parser.parse_args()
    print(orjson.dumps(uvloop.run(levers(args)), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
