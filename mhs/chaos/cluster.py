"""Every role as its own process, on real RabbitMQ and Redis, wired for faults.

Two inbound replicas share the Redis state store behind the tap (our stand-in for the
network and a load balancer); two workers consume the outbound queue; the proxy forwards
to the tap. Every broker connection is named ``chaos-<run>-<role>`` so exactly these can
be closed from the server side; every queue and state key starts ``chaos-<run>.``. With
``lose_confirms``, the outbound MHS and the inbound replicas reach RabbitMQ through a
forwarder that can lose publish confirms (mhs.chaos.confirm_loss).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import redis.asyncio as aioredis
import yaml

from mhs.broker import Broker
from mhs.chaos.confirm_loss import ConfirmLosingLink
from mhs.chaos.processes import RoleProcess, free_port
from mhs.chaos.rabbit import close_connections
from mhs.chaos.rabbit_cluster import Node
from mhs.chaos.tap import Tap
from mhs.directory import Directory, load_topology
from mhs.directory.catalogue import set_reliability
from mhs.directory.loader import DEFAULT_TOPOLOGY
from mhs.messages.queues import delete_namespace_queues
from mhs.settings import Settings

# Retry rules that finish in seconds under faults: two interactions retry in the worker,
# two through delay queues; MCCI's persist duration is short enough to see messages expire.
CHAOS_RELIABILITY: dict[str, dict[str, Any]] = {
    "RCMR_IN010000UK05": {"retries": 10, "retry_interval": "PT1.5S", "persist_duration": "PT2M"},
    "RCMR_IN030000UK06": {"retries": 16, "retry_interval": "PT0.4S", "persist_duration": "PT2M"},
    "COPC_IN000001UK01": {"retries": 10, "retry_interval": "PT0.8S", "persist_duration": "PT2M"},
    "MCCI_IN010000UK13": {"retries": 20, "retry_interval": "PT1.2S", "persist_duration": "PT20S"},
}
EXPIRING = "MCCI_IN010000UK13"
EXHAUSTING = "RCMR_IN030000UK06"


def chaos_topology() -> dict[str, Any]:
    """The packaged topology with the retry rules above."""
    text = resources.files("mhs.directory").joinpath(DEFAULT_TOPOLOGY).read_text()
    raw: dict[str, Any] = yaml.safe_load(text)
    for interaction, rules in CHAOS_RELIABILITY.items():
        set_reliability(raw, interaction, **rules)
    return raw


@dataclass
class ChaosConfig:
    """Where to run and how big."""

    broker_url: str
    state_url: str
    workdir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workers: int = 2
    inbound_replicas: int = 2
    prefetch: int = 32
    env: dict[str, str] = field(default_factory=dict)
    lose_confirms: bool = False
    # The RabbitMQ cluster's nodes when broker_url names one (scripts/cluster): node-loss.
    rabbit_nodes: list[Node] = field(default_factory=list)

    @property
    def queue_prefix(self) -> str:
        return f"chaos-{self.run_id}."

    @property
    def connection_prefix(self) -> str:
        return f"chaos-{self.run_id}"


class ChaosCluster:
    """The processes, the tap, and the levers that break them."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        config.workdir.mkdir(parents=True, exist_ok=True)
        topology_path = config.workdir / "topology.json"
        topology_path.write_text(json.dumps(chaos_topology()))
        self.directory: Directory = load_topology(topology_path)
        self.settings = Settings(
            broker_url=config.broker_url,
            state_url=config.state_url,
            queue_prefix=config.queue_prefix,
            connection_name=config.connection_prefix,
        )
        self.proxy_port = free_port()
        self.outbound_port = free_port()
        inbound_ports = [free_port() for _ in range(config.inbound_replicas)]
        self.tap = Tap([f"http://127.0.0.1:{port}" for port in inbound_ports], timeout_s=10)
        self._topology_path = topology_path
        self._inbound_ports = inbound_ports
        self.processes: dict[str, RoleProcess] = {}
        parts = urlsplit(config.broker_url)
        self.confirm_loss = ConfirmLosingLink(parts.hostname or "127.0.0.1", parts.port or 5672)

    def _lossy_broker_url(self) -> str:
        parts = urlsplit(self.config.broker_url)
        login, _, _ = parts.netloc.rpartition("@")
        netloc = f"{login}@127.0.0.1:{self.confirm_loss.port}" if login else ""
        return urlunsplit(parts._replace(netloc=netloc or f"127.0.0.1:{self.confirm_loss.port}"))

    @property
    def outbound_url(self) -> str:
        return f"http://127.0.0.1:{self.outbound_port}"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def _env(self, **ports: int) -> dict[str, str]:
        config = self.config
        env = {
            "MHS_BROKER_URL": config.broker_url,
            "MHS_STATE_URL": config.state_url,
            "MHS_QUEUE_PREFIX": config.queue_prefix,
            "MHS_TOPOLOGY": str(self._topology_path),
            "MHS_HOST": "127.0.0.1",
            "MHS_SPINE_PROXY_URL": self.proxy_url,
            "MHS_ENDPOINT_OVERRIDES": json.dumps(
                {self.directory.hosted_mhs.name: self.tap.url + "/reliablemessaging"}
            ),
            "MHS_PREFETCH": str(config.prefetch),
            "MHS_DELIVERY_TIMEOUT_S": "4",
            "MHS_FORWARD_TIMEOUT_S": "3",
            "MHS_SHUTDOWN_TIMEOUT_S": "8",
            "MHS_DEDUP_PENDING_TTL_S": "10",
            "MHS_LOG_LEVEL": "INFO",
            "MHS_LOG_FORMAT": "json",
            "MHS_OUTBOUND_PORT": str(self.outbound_port),
            "MHS_SPINE_PROXY_PORT": str(self.proxy_port),
        }
        env.update({f"MHS_{name.upper()}_PORT": str(port) for name, port in ports.items()})
        env.update(config.env)
        return env

    def _process(self, name: str, role: str, port_setting: str, port: int) -> RoleProcess:
        env = self._env(**{port_setting: port})
        env["MHS_CONNECTION_NAME"] = f"{self.config.connection_prefix}-{name}"
        if self.config.lose_confirms and role in ("inbound", "outbound"):
            env["MHS_BROKER_URL"] = self._lossy_broker_url()
        process = RoleProcess(
            name, [role], env=env, health_port=port, log_path=self.config.workdir / f"{name}.log"
        )
        self.processes[name] = process
        return process

    async def start(self) -> None:
        """Start the tap, then every role, each waited for until ready."""
        await self.tap.start()
        if self.config.lose_confirms:
            await self.confirm_loss.up()
        for index, port in enumerate(self._inbound_ports, start=1):
            self._process(f"inbound-{index}", "inbound", "inbound", port)
        self._process("spine-proxy", "spine-proxy", "spine_proxy", self.proxy_port)
        for index in range(1, self.config.workers + 1):
            self._process(f"worker-{index}", "worker", "worker", free_port())
        self._process("outbound", "outbound", "outbound", self.outbound_port)
        # Start in dependency order, in parallel within each step (the machine is small).
        steps = [
            [p for n, p in self.processes.items() if n.startswith("inbound")],
            [self.processes["spine-proxy"]],
            [p for n, p in self.processes.items() if n.startswith("worker")],
            [self.processes["outbound"]],
        ]
        for step in steps:
            await asyncio.gather(*(process.start() for process in step))

    async def stop(self) -> dict[str, int]:
        """Stop every process gracefully (SIGTERM), outbound first; their exit codes."""
        codes: dict[str, int] = {}
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.running:
                codes[name] = await process.stop()
        await self.tap.stop()
        await self.confirm_loss.cut()
        return codes

    async def close(self) -> None:
        """Stop whatever still runs, however it has to be stopped."""
        for process in reversed(list(self.processes.values())):
            await process.close()
        await self.tap.stop()
        await self.confirm_loss.cut()

    def named(self, prefix: str) -> list[RoleProcess]:
        return [p for n, p in self.processes.items() if n.startswith(prefix)]

    async def close_broker_connections(self) -> list[str]:
        """Close every connection of the processes under test from the server side."""
        return await close_connections(
            self.config.connection_prefix + "-", "closed by chaos: server-side close"
        )

    async def set_proxy_faults(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            installed = []
            for rule in rules:
                async with session.post(f"{self.proxy_url}/_admin/faults", json=rule) as response:
                    if response.status != 201:
                        raise RuntimeError(
                            f"the proxy refused fault {rule}: {await response.text()}"
                        )
                    installed.append(await response.json())
            return installed

    async def clear_proxy_faults(self) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.delete(f"{self.proxy_url}/_admin/faults") as response,
        ):
            response.raise_for_status()

    async def remove_traces(self, broker: Broker) -> None:
        """Delete this run's queues and state keys."""
        await delete_namespace_queues(broker, self.settings, self.directory)
        client = aioredis.Redis.from_url(self.config.state_url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{self.config.queue_prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    def log_events(self, prefix: str) -> list[dict[str, Any]]:
        """The JSON log lines of processes named ``prefix``*, as written so far."""
        events: list[dict[str, Any]] = []
        for process in self.named(prefix):
            if not process.log_path.exists():
                continue
            for line in process.log_path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    try:
                        events.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        return events
