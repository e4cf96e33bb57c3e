"""Operations tests: the role harness (real roles on port 0, real RabbitMQ), plus the roles'
real logging chain (the metrics are derived from it) writing JSON lines to a buffer."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from mhs.broker import Broker
from mhs.broker.factory import create_broker
from mhs.directory import load_topology
from mhs.messages.queues import delete_namespace_queues
from mhs.observe.logs import configure_logging
from mhs.settings import Settings
from tests.roles.conftest import harness_factory

__all__ = [
    "LiveLogs",
    "Served",
    "TcpRelay",
    "broker_relay",
    "eventually",
    "free_port",
    "harness_factory",
    "live_logs",
    "queues",
    "served",
]


@dataclass
class LiveLogs:
    """What the roles logged, as the JSON lines they wrote."""

    stream: io.StringIO

    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.stream.getvalue().splitlines()]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["event"] == name]


@pytest.fixture
def live_logs(harness_factory: Any) -> Iterator[LiveLogs]:
    """Configure the production logging chain for roles the test starts (after this)."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    yield LiveLogs(stream)
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


async def eventually(check: Callable[[], bool], within_s: float = 20.0, what: str = "") -> None:
    """Wait until ``check()`` holds, failing after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"not within {within_s}s: {what or check}"
        await asyncio.sleep(0.02)


class TcpRelay:
    """A real TCP hop in front of the broker that a test can cut (every connection through
    it closed, new ones refused) and restore on the same port."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self._netloc = parts
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        user = f"{self._netloc.username}:{self._netloc.password}@" if self._netloc.username else ""
        return urlunsplit(self._netloc._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()
            self._writers.discard(sink)


@pytest.fixture
async def broker_relay(rabbitmq_url: str) -> AsyncIterator[TcpRelay]:
    relay = TcpRelay(rabbitmq_url)
    await relay.start()
    yield relay
    await relay.cut()


# `mhs serve all` as a process, for the command-line tests.

MHS = [sys.executable, "-m", "mhs"]
ROOT = Path(__file__).parents[2]


# Every MHS_<NAME>_PORT setting `serve all` listens on.
PORT_SETTINGS = (
    "OUTBOUND",
    "SPINE_PROXY",
    "INBOUND",
    "WORKER",
    "GP_PROVIDER",
    "REMOTE_INBOUND",
    "SDS",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    """`mhs serve` in its own process, its environment and its log file."""

    env: dict[str, str]
    log: Path
    settings: Settings

    def url(self, port: str) -> str:
        return f"http://127.0.0.1:{self.env[port]}"

    def mhs(
        self, *args: str, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MHS, *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={**os.environ, **self.env, **env},
            input=stdin,
            check=False,
        )

    def metric(self, port: str, name: str, **labels: str) -> float:
        with urllib.request.urlopen(self.url(port) + "/metrics", timeout=10) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    def until_metric(self, port: str, name: str, value: float, **labels: str) -> None:
        deadline = time.monotonic() + 60
        while (current := self.metric(port, name, **labels)) != value:
            assert time.monotonic() < deadline, f"{name}{labels} = {current}, not {value}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def served(rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    token = uuid.uuid4().hex[:12]
    ports = {name: str(free_port()) for name in PORT_SETTINGS}
    env = {f"MHS_{name}_PORT": port for name, port in ports.items()}
    env.update(
        MHS_BROKER_URL=rabbitmq_url,
        MHS_QUEUE_PREFIX=f"test-{token}.",
        MHS_CONNECTION_NAME=f"test-{token}",
        MHS_SPINE_PROXY_URL=f"http://127.0.0.1:{ports['SPINE_PROXY']}",
        MHS_ENDPOINT_OVERRIDES=orjson.dumps(
            {"datacentre": f"http://127.0.0.1:{ports['INBOUND']}/reliablemessaging"}
        ).decode(),
        MHS_SHUTDOWN_TIMEOUT_S="3",
    )
    for port in ports:
        env[port] = env[f"MHS_{port}_PORT"]
    log = tmp_path_factory.mktemp("served") / "roles.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [*MHS, "serve", "all"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    served = Served(env, log, Settings(queue_prefix=f"test-{token}."))
    try:
        deadline = time.monotonic() + 60
        while served.mhs("healthcheck", "inbound").returncode != 0 or any(
            served.mhs("healthcheck", role).returncode != 0
            for role in ("outbound", "worker", "spine-proxy")
        ):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "mhs serve never became ready"
            time.sleep(0.3)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Only once the roles are gone: a role keeps publishing to the queues it declared.
        asyncio.run(_delete_queues(rabbitmq_url, served.settings))


@pytest.fixture
async def queues(served: Served, rabbitmq_url: str) -> AsyncIterator[Broker]:
    """A client of the broker, to read the instances' queues."""
    broker = create_broker(rabbitmq_url, connection_name="mhs-test-client")
    await broker.start()
    yield broker
    await broker.stop()


async def _delete_queues(rabbitmq_url: str, settings: Settings) -> None:
    broker = create_broker(rabbitmq_url, connection_name="mhs-test-client")
    await broker.start()
    await delete_namespace_queues(broker, settings, load_topology())
    await broker.stop()
