"""Benchmark: the product against the yardstick, on RabbitMQ, in one run on one machine.

Both systems run one process per role (outbound, worker, proxy, inbound) and are driven by
this process, which POSTs 1 KiB messages and consumes the recipients' queues, timing each
message from its POST to its arrival. See docs/performance.md for what the figures mean.

    scripts/bench                      # yardstick vs product, human-readable
    scripts/bench --json               # one JSON object
    scripts/bench --scaling            # also 10 / 1,000 / 10,000 hosted instances
    scripts/bench --state-url redis://127.0.0.1:6379/0   # the product on Redis
    scripts/bench --messages 300 --json --no-half-rate   # the CI smoke
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import uvloop
import yaml
from aiolimiter import AsyncLimiter

from mhs.broker import Broker, Delivery, Subscription
from mhs.broker.factory import create_broker
from mhs.chaos import rabbit_cluster
from mhs.directory import Directory, generate_topology
from mhs.messages.queues import namespace_queues
from mhs.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
INTERACTION = "RCMR_IN010000UK05"
RECIPIENT_POOL = 64
HL7 = (
    '<hl7:RCMR_IN010000UK05 xmlns:hl7="urn:hl7-org:v3">'
    '<hl7:id root="{id}"/>'
    '<hl7:communicationFunctionRcv typeCode="RCV"><hl7:device classCode="DEV" '
    'determinerCode="INSTANCE"><hl7:id root="1.2.826.0.1285.0.2.0.107" extension="{to}"/>'
    "</hl7:device></hl7:communicationFunctionRcv>"
    '<hl7:communicationFunctionSnd typeCode="SND"><hl7:device classCode="DEV" '
    'determinerCode="INSTANCE"><hl7:id root="1.2.826.0.1285.0.2.0.107" extension="{frm}"/>'
    "</hl7:device></hl7:communicationFunctionSnd>"
    "<hl7:ControlActEvent>{pad}</hl7:ControlActEvent></hl7:RCMR_IN010000UK05>"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)


@dataclass
class Message:
    """One message to send: its id, HTTP headers and body."""

    message_id: str
    headers: dict[str, str]
    body: bytes


@dataclass
class System:
    """A running system under test: its processes, entry URL and where messages arrive."""

    name: str
    url: str
    queues: list[str]
    # Every queue it can leave behind, to delete afterwards.
    owned: list[str] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    messages: Callable[[int], Iterator[Message]] = field(default=lambda _: iter(()))

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user and system) used so far by each role (with its children, as
        under py-spy), by RabbitMQ and by this driver."""
        out: dict[str, float] = {}
        for role, proc in self.processes.items():
            with suppress(psutil.Error):
                process = psutil.Process(proc.pid)
                out[role] = sum(_cpu(p) for p in (process, *process.children(recursive=True)))
        out["rabbitmq"] = sum(_cpu(p) for p in _rabbitmq_processes())
        out["driver"] = _cpu(psutil.Process())
        return out

    def rss_mb(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for role, proc in self.processes.items():
            with suppress(psutil.Error):
                out[role] = round(psutil.Process(proc.pid).memory_info().rss / 2**20, 1)
        return out


def cpu_us_per_message(
    before: dict[str, float], after: dict[str, float], messages: int
) -> dict[str, float]:
    """CPU microseconds per message of each part between two ``System.cpu_s`` readings."""
    return {part: (after[part] - before.get(part, 0.0)) * 1e6 / max(messages, 1) for part in after}


def _cpu(process: psutil.Process) -> float:
    with suppress(psutil.Error):
        times = process.cpu_times()
        return float(times.user + times.system)
    return 0.0


def _rabbitmq_processes() -> list[psutil.Process]:
    names = ("beam.smp", "epmd", "erl_child_setup")
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] in names]


@dataclass
class Phase:
    """What one load phase measured."""

    sent: int
    arrived: int
    mps: float
    p50_ms: float
    p99_ms: float
    refused: int
    cpu_us_per_message: dict[str, float] = field(default_factory=dict)


class Driver:
    """Sends messages over HTTP and times their arrival on the recipient queues."""

    def __init__(self, broker: Broker, session: aiohttp.ClientSession) -> None:
        self.broker = broker
        self.session = session
        self.sent_at: dict[str, float] = {}
        self.arrived_at: dict[str, float] = {}
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._subscriptions: list[Subscription] = []

    async def watch(self, queues: Sequence[str]) -> None:
        for queue in queues:
            await self.broker.declare_queue(queue)
            self._subscriptions.append(
                await self.broker.consume(queue, self._arrived, prefetch=512)
            )

    async def unwatch(self) -> None:
        while self._subscriptions:
            await self._subscriptions.pop().cancel()

    async def _arrived(self, delivery: Delivery) -> None:
        now = time.perf_counter()
        await delivery.ack()
        message_id = delivery.message_id or ""
        self.arrived_at.setdefault(message_id, now)
        waiter = self._waiting.pop(message_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _send(self, url: str, message: Message) -> bool:
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[message.message_id] = waiter
        self.sent_at[message.message_id] = time.perf_counter()
        async with self.session.post(url, data=message.body, headers=message.headers) as response:
            await response.read()
            if response.status != 202:
                self._waiting.pop(message.message_id, None)
                return False
        return True

    async def run(
        self,
        url: str,
        messages: Sequence[Message],
        *,
        concurrency: int,
        rate: float | None = None,
        settle_s: float = 60.0,
    ) -> Phase:
        """Send ``messages`` closed-loop with ``concurrency`` in flight, or open-loop at
        ``rate`` per second; wait for every accepted one to arrive."""
        accepted: list[str] = []
        refused = 0
        gate = asyncio.Semaphore(concurrency)
        # A bucket of one: evenly spaced sends, not a burst of ``rate`` at the start.
        limiter = AsyncLimiter(1, 1.0 / rate) if rate else None

        async def one(message: Message) -> None:
            nonlocal refused
            if limiter is not None:
                await limiter.acquire()
            async with gate:
                if await self._send(url, message):
                    accepted.append(message.message_id)
                    # Closed loop: the slot is free only once the message has arrived.
                    future = self._waiting.get(message.message_id)
                    if future is not None and limiter is None:
                        with suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(future), settle_s)
                else:
                    refused += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(m) for m in messages))
        pending = [self._waiting[m] for m in accepted if m in self._waiting]
        if pending:
            await asyncio.wait(pending, timeout=settle_s)
        arrived = [m for m in accepted if m in self.arrived_at]
        latencies = [(self.arrived_at[m] - self.sent_at[m]) * 1000 for m in arrived]
        last = max((self.arrived_at[m] for m in arrived), default=started)
        return Phase(
            sent=len(messages),
            arrived=len(arrived),
            mps=round(len(arrived) / max(last - started, 1e-9), 1),
            p50_ms=_percentile(latencies, 0.5),
            p99_ms=_percentile(latencies, 0.99),
            refused=refused,
        )


def _spawn(
    name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path, *, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    log = (log_dir / f"{name}.log").open("wb")
    return subprocess.Popen(
        list(argv), env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
    )


# Both systems get as long to start: on a loaded machine RabbitMQ can take a while to
# declare quorum queues (the CI smoke once saw the yardstick's worker miss 30 s).
READY_WITHIN_S = 120.0


async def _wait_ready(
    session: aiohttp.ClientSession, urls: dict[str, str], within_s: float
) -> None:
    deadline = time.monotonic() + within_s
    for role, url in urls.items():
        while True:
            with suppress(aiohttp.ClientError, OSError):
                async with session.get(url + "/readyz") as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{role} did not become ready at {url}")
            await asyncio.sleep(0.1)


def _stop(system: System) -> None:
    for proc in system.processes.values():
        # Under py-spy the role is its child: stopping the role lets py-spy write its profile.
        children: list[psutil.Process] = []
        with suppress(psutil.Error):
            children = psutil.Process(proc.pid).children()
            for child in children:
                child.terminate()
        if children and proc.poll() is None:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
        if proc.poll() is None:
            proc.terminate()
    for proc in system.processes.values():
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _payload(size: int, message_id: str, frm: str, to: str) -> str:
    base = HL7.format(id=message_id, frm=frm, to=to, pad="")
    return HL7.format(id=message_id, frm=frm, to=to, pad="x" * max(0, size - len(base)))


@asynccontextmanager
async def yardstick(
    session: aiohttp.ClientSession,
    amqp: str,
    prefix: str,
    size: int,
    log_dir: Path,
    *,
    recipients: int = 1,
) -> AsyncIterator[System]:
    """The yardstick's four processes, and messages for it (to ``recipients`` queues)."""
    ports = {role: _free_port() for role in ("outbound", "worker", "proxy", "inbound")}
    urls = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
    script = [sys.executable, str(ROOT / "scripts/yardstick.py")]
    work, delivered = f"{prefix}work", f"{prefix}delivered"
    args = {
        "inbound": ["--amqp", amqp, "--queue", delivered],
        "proxy": ["--target", urls["inbound"] + "/"],
        "worker": ["--amqp", amqp, "--queue", work, "--target", urls["proxy"] + "/"],
        "outbound": ["--amqp", amqp, "--queue", work],
    }
    targets = [delivered] if recipients == 1 else [f"{delivered}.{i}" for i in range(recipients)]
    system = System("yardstick", urls["outbound"] + "/", targets, [*targets, work])
    rng = random.Random(7)  # a reproducible load, not a secret
    for role, extra in args.items():
        system.processes[role] = _spawn(
            f"yardstick-{role}", [*script, role, "--port", str(ports[role]), *extra], {}, log_dir
        )

    def messages(count: int) -> Iterator[Message]:
        for _ in range(count):
            message_id = str(uuid.uuid4()).upper()
            body = orjson.dumps({"payload": _payload(size, message_id, "x" * 12, "y" * 12)})
            headers = {"Message-Id": message_id}
            if recipients > 1:
                headers["To-Queue"] = rng.choice(targets)
            yield Message(message_id, headers, body)

    system.messages = messages
    try:
        await _wait_ready(session, urls, READY_WITHIN_S)
        yield system
    finally:
        _stop(system)


def _topology_file(hosted: int, path: Path) -> Directory:
    # Everyone shares data with everyone, so every message the bench sends is deliverable;
    # the SSP still runs every check on every message.
    topology = generate_topology(hosted=hosted, remote=0)
    data = topology.model_dump(mode="json", exclude_none=True)
    for mhs, model in zip(data["mhs"], topology.mhs, strict=True):
        for instance, source in zip(mhs["instances"], model.instances, strict=True):
            if source.credential is not None:
                instance["credential"] = source.credential.get_secret_value()
    data["agreement_groups"] = [[i["ods_code"] for i in data["mhs"][0]["instances"]]]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return Directory(topology)


@asynccontextmanager
async def product(
    session: aiohttp.ClientSession,
    amqp: str,
    prefix: str,
    size: int,
    log_dir: Path,
    *,
    hosted: int = 32,
    profile: Path | None = None,
    workers: int = 1,
    state_url: str | None = None,
    root: Path = ROOT,
) -> AsyncIterator[System]:
    """The product's four roles, each in its own process (``workers`` delivery workers),
    with everything on, run from ``root`` (a checkout of the code to measure)."""
    topology = log_dir / f"topology-{hosted}.yaml"
    directory = _topology_file(hosted, topology)
    extra_workers = [f"worker-{n}" for n in range(2, workers + 1)]
    roles = ("outbound", "worker", "spine-proxy", "inbound", *extra_workers)
    ports = {role: _free_port() for role in roles}
    urls = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
    env = {
        "MHS_BROKER_URL": amqp,
        "MHS_TOPOLOGY": str(topology),
        "MHS_QUEUE_PREFIX": prefix,
        "MHS_OUTBOUND_PORT": str(ports["outbound"]),
        "MHS_WORKER_PORT": str(ports["worker"]),
        "MHS_SPINE_PROXY_PORT": str(ports["spine-proxy"]),
        "MHS_INBOUND_PORT": str(ports["inbound"]),
        "MHS_SPINE_PROXY_URL": urls["spine-proxy"],
        "MHS_ENDPOINT_OVERRIDES": orjson.dumps(
            {"datacentre": urls["inbound"] + "/reliablemessaging"}
        ).decode(),
        "MHS_LOG_LEVEL": "INFO",
        "MHS_LOG_FORMAT": "json",
    }
    if state_url is not None:
        env["MHS_STATE_URL"] = state_url
    parties = sorted(directory.parties, key=lambda p: p.asid)
    step = max(1, len(parties) // RECIPIENT_POOL)
    recipients = parties[::step][:RECIPIENT_POOL]
    system = System(
        f"product-{hosted}",
        urls["outbound"] + "/",
        [f"{prefix}inbound.{p.asid}" for p in recipients],
        namespace_queues(Settings(queue_prefix=prefix), directory),
    )
    for role in ("inbound", "spine-proxy", "worker", *extra_workers, "outbound"):
        serves = "worker" if role in extra_workers else role
        argv = [sys.executable, "-m", "mhs", "serve", serves]
        if profile is not None:
            out = profile / f"{role}-{hosted}.txt"
            argv = [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "-o",
                str(out),
                "--",
                *argv,
            ]
        own = {"MHS_WORKER_PORT": str(ports[role])} if role in extra_workers else {}
        system.processes[role] = _spawn(
            f"product-{hosted}-{role}", argv, {**env, **own}, log_dir, cwd=root
        )
    rng = random.Random(7)  # a reproducible load, not a secret
    credentials = {p.asid: directory.credential_for(p.asid) or "" for p in parties}

    def messages(count: int) -> Iterator[Message]:
        for _ in range(count):
            recipient = rng.choice(recipients)
            sender = rng.choice(parties)
            while sender.asid == recipient.asid:
                sender = rng.choice(parties)
            message_id = str(uuid.uuid4()).upper()
            payload = _payload(size, message_id, sender.asid, recipient.asid)
            headers = {
                "Authorization": f"Bearer {credentials[sender.asid]}",
                "Interaction-Id": INTERACTION,
                "Message-Id": message_id,
                "wait-for-response": "false",
                "ods-code": recipient.ods_code,
                "to-asid": recipient.asid,
                "Content-Type": "application/json",
            }
            yield Message(message_id, headers, orjson.dumps({"payload": payload}))

    system.messages = messages
    try:
        await _wait_ready(session, urls, READY_WITHIN_S)
        yield system
    finally:
        _stop(system)


@contextmanager
def _log_dir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="mhs-bench-") as tmp:
        yield Path(tmp)


async def _measure(
    driver: Driver, system: System, args: argparse.Namespace, rate: float | None
) -> dict[str, Phase]:
    await driver.watch(system.queues)
    await driver.run(system.url, list(system.messages(args.warmup)), concurrency=args.concurrency)
    before = system.cpu_s()
    load = await driver.run(
        system.url, list(system.messages(args.messages)), concurrency=args.concurrency
    )
    after = system.cpu_s()
    load.cpu_us_per_message = {
        part: round(us, 1) for part, us in cpu_us_per_message(before, after, load.arrived).items()
    }
    load.cpu_us_per_message["total"] = round(sum(load.cpu_us_per_message.values()), 1)
    phases = {
        "load": load,
        "one": await driver.run(system.url, list(system.messages(args.one)), concurrency=1),
    }
    if rate:
        phases["half"] = await _half_rate(driver, system, args, rate)
        # And at half its own capacity: the latency of a message, not of a queue.
        phases["own_half"] = await _half_rate(driver, system, args, load.mps / 2)
    return phases


async def _half_rate(
    driver: Driver, system: System, args: argparse.Namespace, rate: float
) -> Phase:
    """Open loop at ``rate`` messages/s: latency when the system is not saturated."""
    count = max(args.messages // 2, 100)
    return await driver.run(
        system.url, list(system.messages(count)), concurrency=args.concurrency * 4, rate=rate
    )


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    result: dict[str, Any] = {
        "messages": args.messages,
        "concurrency": args.concurrency,
        "size_bytes": args.size,
    }
    client = create_broker(args.broker, connection_name=f"mhs-bench-{run}")
    await client.start()
    queues: list[str] = []
    driver: Driver | None = None
    try:
        with _log_dir(args.keep_logs) as log_dir:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=args.concurrency * 4)
            ) as session:
                driver = Driver(client, session)
                async with yardstick(
                    session,
                    args.broker,
                    f"bench-{run}.ys.",
                    args.size,
                    log_dir,
                    recipients=args.yardstick_queues,
                ) as system:
                    queues += system.owned
                    ys = await _measure(driver, system, args, None)
                    half_rate = ys["load"].mps / 2 if args.half_rate else None
                    if half_rate:
                        ys["half"] = await _half_rate(driver, system, args, half_rate)
                prefix = f"bench-{run}.p."
                async with product(
                    session,
                    args.broker,
                    prefix,
                    args.size,
                    log_dir,
                    profile=args.profile,
                    state_url=args.state_url,
                ) as system:
                    queues += system.owned
                    pr = await _measure(driver, system, args, half_rate)
                    result["product_rss_mb"] = system.rss_mb()
                _record(result, ys, pr)
                if args.cluster:
                    result["cluster"] = await _cluster(
                        session=session, args=args, run=run, log_dir=log_dir
                    )
                if args.scaling:
                    result["scaling"] = await _scaling(
                        driver=driver,
                        session=session,
                        args=args,
                        run=run,
                        log_dir=log_dir,
                        queues=queues,
                    )
    finally:
        if driver is not None:
            await driver.unwatch()
        for queue in queues:
            with suppress(Exception):
                await client.delete_queue(queue)
        await client.stop()
    return result


def _record(result: dict[str, Any], ys: dict[str, Phase], pr: dict[str, Phase]) -> None:
    result.update(
        yardstick_mps=ys["load"].mps,
        product_mps=pr["load"].mps,
        ratio=_ratio(pr["load"].mps, ys["load"].mps),
        yardstick_p50_ms=ys["load"].p50_ms,
        yardstick_p99_ms=ys["load"].p99_ms,
        product_p50_ms=pr["load"].p50_ms,
        product_p99_ms=pr["load"].p99_ms,
        yardstick_one_in_flight_p50_ms=ys["one"].p50_ms,
        yardstick_one_in_flight_p99_ms=ys["one"].p99_ms,
        product_one_in_flight_p50_ms=pr["one"].p50_ms,
        product_one_in_flight_p99_ms=pr["one"].p99_ms,
        one_in_flight_p50_ratio=_ratio(pr["one"].p50_ms, ys["one"].p50_ms),
        yardstick_cpu_us_per_message=ys["load"].cpu_us_per_message,
        product_cpu_us_per_message=pr["load"].cpu_us_per_message,
        lost=sum(p.sent - p.refused - p.arrived for p in (*ys.values(), *pr.values())),
        refused=sum(p.refused for p in (*ys.values(), *pr.values())),
    )
    if "half" in ys and "half" in pr:
        result.update(
            half_rate_mps=round(ys["load"].mps / 2, 1),
            yardstick_half_rate_p99_ms=ys["half"].p99_ms,
            product_half_rate_p99_ms=pr["half"].p99_ms,
            half_rate_p99_ratio=_ratio(pr["half"].p99_ms, ys["half"].p99_ms),
            product_own_half_rate_mps=round(pr["load"].mps / 2, 1),
            product_own_half_rate_p99_ms=pr["own_half"].p99_ms,
            own_half_rate_p99_ratio=_ratio(pr["own_half"].p99_ms, ys["half"].p99_ms),
        )


async def _scaling(
    *,
    driver: Driver,
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    run: str,
    log_dir: Path,
    queues: list[str],
) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for hosted in args.sizes:
        prefix = f"bench-{run}.s{hosted}."
        async with product(
            session, args.broker, prefix, args.size, log_dir, hosted=hosted
        ) as system:
            queues += system.owned
            await driver.watch(system.queues)
            await driver.run(
                system.url, list(system.messages(args.warmup)), concurrency=args.concurrency
            )
            phase = await driver.run(
                system.url, list(system.messages(args.messages)), concurrency=args.concurrency
            )
            sizes[str(hosted)] = {
                "product_mps": phase.mps,
                "p99_ms": phase.p99_ms,
                "rss_mb": system.rss_mb(),
            }
    smallest, largest = str(min(args.sizes)), str(max(args.sizes))
    sizes["ratio_largest_to_smallest"] = _ratio(
        sizes[largest]["product_mps"], sizes[smallest]["product_mps"]
    )
    return sizes


async def _cluster(
    *, session: aiohttp.ClientSession, args: argparse.Namespace, run: str, log_dir: Path
) -> dict[str, Any]:
    """Throughput on one node against a three-node cluster (scripts/cluster), with one
    delivery worker and with three, in the same run."""
    nodes = rabbit_cluster.nodes(3)
    was_up = all(
        await asyncio.gather(*(asyncio.to_thread(rabbit_cluster.running, n) for n in nodes))
    )
    await asyncio.to_thread(rabbit_cluster.start, nodes)
    cluster_url = rabbit_cluster.broker_url(nodes)
    figures: dict[str, Any] = {}
    try:
        for label, url, workers in (
            ("one_node_1_worker", args.broker, 1),
            ("cluster_1_worker", cluster_url, 1),
            ("cluster_3_workers", cluster_url, 3),
        ):
            figures[label] = await _product_load(
                session,
                args=args,
                url=url,
                prefix=f"bench-{run}.{label}.",
                log_dir=log_dir,
                workers=workers,
            )
    finally:
        if not was_up:
            await asyncio.to_thread(rabbit_cluster.stop, nodes, remove=True)
    figures["cluster_cost"] = _ratio(
        figures["cluster_1_worker"]["product_mps"], figures["one_node_1_worker"]["product_mps"]
    )
    figures["three_workers_gain"] = _ratio(
        figures["cluster_3_workers"]["product_mps"], figures["cluster_1_worker"]["product_mps"]
    )
    return figures


async def _product_load(
    session: aiohttp.ClientSession,
    *,
    args: argparse.Namespace,
    url: str,
    prefix: str,
    log_dir: Path,
    workers: int,
) -> dict[str, Any]:
    """One load phase through the product on the broker at ``url``."""
    client = create_broker(url, connection_name=f"mhs-bench-{prefix}")
    await client.start()
    driver = Driver(client, session)
    owned: list[str] = []
    try:
        async with product(session, url, prefix, args.size, log_dir, workers=workers) as system:
            owned = system.owned
            await driver.watch(system.queues)
            await driver.run(
                system.url, list(system.messages(args.warmup)), concurrency=args.concurrency
            )
            phase = await driver.run(
                system.url, list(system.messages(args.messages)), concurrency=args.concurrency
            )
    finally:
        await driver.unwatch()
        for queue in owned:
            with suppress(Exception):
                await client.delete_queue(queue)
        await client.stop()
    return {"product_mps": phase.mps, "p99_ms": phase.p99_ms, "lost": phase.sent - phase.arrived}


def _print(result: dict[str, Any]) -> None:
    rows: list[tuple[str, Any, Any, Any]] = [
        ("messages/s", result["yardstick_mps"], result["product_mps"], result["ratio"]),
        ("p50 ms", result["yardstick_p50_ms"], result["product_p50_ms"], ""),
        ("p99 ms", result["yardstick_p99_ms"], result["product_p99_ms"], ""),
        (
            "one in flight p50 ms",
            result["yardstick_one_in_flight_p50_ms"],
            result["product_one_in_flight_p50_ms"],
            result["one_in_flight_p50_ratio"],
        ),
        (
            "one in flight p99 ms",
            result["yardstick_one_in_flight_p99_ms"],
            result["product_one_in_flight_p99_ms"],
            "",
        ),
    ]
    if "half_rate_p99_ratio" in result:
        rows.append(
            (
                f"p99 ms at {result['half_rate_mps']}/s",
                result["yardstick_half_rate_p99_ms"],
                result["product_half_rate_p99_ms"],
                result["half_rate_p99_ratio"],
            )
        )
        rows.append(
            (
                "p99 ms at half its own rate",
                result["yardstick_half_rate_p99_ms"],
                result["product_own_half_rate_p99_ms"],
                result["own_half_rate_p99_ratio"],
            )
        )
    print(f"{'':28}{'yardstick':>12}{'product':>12}{'ratio':>8}")
    for name, ys, pr, ratio in rows:
        print(f"{name:28}{ys:>12}{pr:>12}{ratio:>8}")
    print(f"CPU us per message, yardstick: {result['yardstick_cpu_us_per_message']}")
    print(f"CPU us per message, product:   {result['product_cpu_us_per_message']}")
    print(f"product RSS MB: {result['product_rss_mb']}; lost {result['lost']}")
    for label, figure in result.get("cluster", {}).items():
        print(f"cluster {label}: {figure}")
    for size, figures in result.get("scaling", {}).items():
        print(f"scaling {size}: {figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--broker", default=os.environ.get("MHS_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--one", type=int, default=300, help="messages sent one at a time")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--size", type=int, default=1024, help="HL7 payload bytes")
    parser.add_argument("--no-half-rate", dest="half_rate", action="store_false")
    parser.add_argument(
        "--yardstick-queues",
        type=int,
        default=1,
        help="recipient queues the yardstick's inbound spreads messages over (the product: 64)",
    )
    parser.add_argument(
        "--state-url",
        default=None,
        help="the product's state store (MHS_STATE_URL), e.g. redis://127.0.0.1:6379/0 as "
        "replicas need; unset: in-process",
    )
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also one node against a three-node cluster (scripts/cluster), 1 and 3 workers",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000, 10_000])
    parser.add_argument("--keep-logs", type=Path, default=None)
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy each product role into this folder"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    result = uvloop.run(bench(args))
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        _print(result)
    sys.exit(1 if result["lost"] else 0)


if __name__ == "__main__":
    main()
