"""docker/: no Docker engine runs here, so the compose file and the Dockerfile are checked
against the real CLI and settings, and the same commands, environment, healthchecks, start
order and replicas are run as processes on this host."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import typer
import yaml

from mhs.broker.factory import create_broker
from mhs.cli.main import app
from mhs.directory import load_topology
from mhs.runner import ROLES
from mhs.settings import Settings

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker/compose.yaml").read_text())
DOCKERFILE = (ROOT / "docker/Dockerfile").read_text()
IMAGE = "mhs-simulator:latest"
SERVICES: dict[str, dict[str, Any]] = {
    name: service for name, service in COMPOSE["services"].items() if service.get("image") == IMAGE
}
CLI = typer.main.get_command(app)


def _instruction(name: str) -> list[str]:
    """The exec-form (JSON array) arguments of the runtime stage's last ``name`` instruction."""
    runtime = DOCKERFILE.replace("\\\n", " ").split("\nFROM ")[-1]
    found = re.findall(rf"^{name}\b(?:.*?\bCMD)?\s+(\[.*\])\s*$", runtime, flags=re.MULTILINE)
    assert found, f"no exec-form {name} in the Dockerfile's runtime stage"
    arguments: list[str] = json.loads(found[-1])
    return arguments


def _image_env() -> dict[str, str]:
    """The runtime stage's MHS_* ENV settings."""
    runtime = DOCKERFILE.replace("\\\n", " ").split("\nFROM ")[-1]
    env = [line for line in runtime.splitlines() if line.startswith("ENV ")]
    return dict(re.findall(r"\b(MHS_[A-Z_]+)=(\S+)", " ".join(env)))


def _envvars(command: Any) -> set[str]:
    found = {p.envvar for p in command.params if isinstance(p.envvar, str)}
    for sub in getattr(command, "commands", {}).values():
        found |= _envvars(sub)
    return found


def _check_command(argv: list[str]) -> None:
    """``argv`` (after ``mhs``) names a real command, with real roles where it takes them."""
    command = CLI
    args = list(argv)
    while hasattr(command, "commands") and args and args[0] in command.commands:
        command = command.commands[args.pop(0)]
    assert command is not CLI, f"mhs {' '.join(argv)}: no such command"
    if command.name == "serve":
        assert args, "serve needs roles"
        assert set(args) <= {*ROLES, "all"}, args
    if command.name == "healthcheck" and args:
        assert args[0] in {*ROLES, "all"}, args


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", value)
    assert match, value
    number, unit = float(match[1]), match[2]
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


def test_the_dockerfile_builds_slim_multi_stage_non_root_with_exec_entrypoint() -> None:
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert len(stages) >= 2
    assert all("slim" in image for image in stages)
    assert "COPY --from=build" in DOCKERFILE
    user = re.findall(r"^USER (\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert user
    assert user[-1] not in ("root", "0")
    assert _instruction("ENTRYPOINT") == ["mhs"]
    _check_command(_instruction("CMD"))
    healthcheck = _instruction("HEALTHCHECK")
    assert healthcheck[0] == "mhs"
    _check_command(healthcheck[1:])
    instructions = [line for line in DOCKERFILE.splitlines() if not line.startswith("#")]
    assert not any("curl" in line or "wget" in line for line in instructions)
    # The image's healthcheck checks what its `mhs serve` serves, not every role's port.
    assert "MHS_ROLE" not in _image_env()
    assert _image_env()["MHS_SERVE_FILE"].startswith("/tmp/")  # the compose tmpfs


def test_every_compose_command_and_variable_exists() -> None:
    settings_vars = {f"MHS_{name.upper()}" for name in Settings.model_fields}
    cli_vars = _envvars(CLI)
    assert "MHS_ROLE" in cli_vars
    assert {"rabbitmq", "redis"} <= set(COMPOSE["services"])
    for name, service in SERVICES.items():
        _check_command(service["command"])
        test = service.get("healthcheck", {}).get("test")
        if test:
            assert test[:2] == ["CMD", "mhs"], name
            _check_command(test[2:])
        environment = service["environment"]
        unknown = {k for k in environment if k not in settings_vars | cli_vars}
        assert not unknown, f"{name}: {unknown} are neither settings nor CLI variables"
        assert all(k.startswith("MHS_") for k in environment), name


def test_every_compose_environment_is_a_valid_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, service in SERVICES.items():
        with monkeypatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("MHS_")]:
                patch.delenv(key)
            for key, value in service["environment"].items():
                patch.setenv(key, str(value))
            patch.delenv("MHS_ROLE")  # the CLI's, not a setting
            settings = Settings()
        assert settings.broker_url == "amqp://guest:guest@rabbitmq:5672/", name
        assert settings.host == "0.0.0.0", name
        assert set(settings.endpoint_overrides) == {"datacentre", "remote"}, name


def test_shutdown_fits_in_the_stop_grace_period_and_start_waits_for_health() -> None:
    healthy = {
        name
        for name, service in COMPOSE["services"].items()
        if "healthcheck" in service or service.get("image") == IMAGE
    }
    for name, service in SERVICES.items():
        timeout = float(service["environment"]["MHS_SHUTDOWN_TIMEOUT_S"])
        assert _seconds(service["stop_grace_period"]) > timeout, name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, name
            assert dependency in healthy, f"{name} waits for {dependency}, which has no health"
    assert SERVICES["worker"]["deploy"]["replicas"] >= 2
    assert "ports" not in SERVICES["worker"]  # scaled replicas cannot share host ports
    assert COMPOSE["services"]["rabbitmq"]["image"].endswith("-management")
    # Nothing published on the ports of a RabbitMQ on the host (the README's tests use one).
    published = [str(p).rsplit(":", 2)[-2] for p in COMPOSE["services"]["rabbitmq"]["ports"]]
    assert not {"5672", "15672"} & set(published), published


# The same services as processes on this host.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


ROLE_PORTS = {
    "outbound": "MHS_OUTBOUND_PORT",
    "worker": "MHS_WORKER_PORT",
    "spine-proxy": "MHS_SPINE_PROXY_PORT",
    "inbound": "MHS_INBOUND_PORT",
    "gp-provider": "MHS_GP_PROVIDER_PORT",
    "sds": "MHS_SDS_PORT",
}
CONTAINER_PORTS = {"outbound": 8080, "spine-proxy": 8081, "inbound": 8082, "worker": 8083}


@dataclass
class Process:
    service: str
    env: dict[str, str]
    popen: subprocess.Popen[bytes]

    @property
    def role(self) -> str:
        return self.env["MHS_ROLE"]

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.env[ROLE_PORTS[self.role]]}/readyz"


def _levels() -> list[list[str]]:
    """Services in the order compose starts them: each level waits for the one before."""
    levels: list[list[str]] = []
    placed: set[str] = set()
    pending = dict(SERVICES)
    while pending:
        level = [
            name
            for name, service in pending.items()
            if set(service.get("depends_on", {})) & set(SERVICES) <= placed
        ]
        assert level, f"a dependency cycle among {sorted(pending)}"
        levels.append(sorted(level))
        placed.update(level)
        for name in level:
            del pending[name]
    return levels


def _local_env(
    service: dict[str, Any], ports: dict[str, int], urls: dict[str, str], own_port: int
) -> dict[str, str]:
    env = {key: str(value) for key, value in service["environment"].items()}
    env["MHS_BROKER_URL"] = urls["broker"]
    env["MHS_STATE_URL"] = urls["state"]
    env["MHS_HOST"] = "127.0.0.1"
    for key, value in env.items():  # another container's address -> this host's port
        env[key] = re.sub(
            r"//([a-z-]+):\d+",
            lambda m: f"//127.0.0.1:{ports[m[1]]}" if m[1] in ports else m[0],
            value,
        )
    env.update({var: str(ports[role]) for role, var in ROLE_PORTS.items() if role in ports})
    env[ROLE_PORTS[env["MHS_ROLE"]]] = str(own_port)
    env.update(MHS_QUEUE_PREFIX=urls["prefix"], MHS_CONNECTION_NAME=urls["connection"])
    return env


def _wait_ready(process: Process, deadline: float) -> None:
    while True:
        assert process.popen.poll() is None, f"{process.service} exited {process.popen.returncode}"
        try:
            with urllib.request.urlopen(process.ready_url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        assert time.monotonic() < deadline, f"{process.service} never became ready"
        time.sleep(0.2)


def _mhs(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mhs", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **env},
        check=False,
    )


@pytest.fixture
def compose_as_processes(
    rabbitmq_url: str, redis_url: str, unique: str, tmp_path: Path
) -> Iterator[list[Process]]:
    # One port per service on this host; the services that share a role get their own.
    ports = {name: _free_port() for name in SERVICES if name != "worker"}
    urls = {
        "broker": rabbitmq_url,
        "state": redis_url,
        "prefix": f"test-{unique}.",
        "connection": f"test-{unique}",
    }
    started: list[Process] = []
    deadline = time.monotonic() + 90
    try:
        for level in _levels():
            batch = []
            for name in level:
                service = SERVICES[name]
                replicas = service.get("deploy", {}).get("replicas", 1)
                for replica in range(replicas):
                    own = ports.get(name) or _free_port()
                    env = _local_env(service, ports, urls, own)
                    with (tmp_path / f"{name}-{replica}.log").open("wb") as log:
                        popen = subprocess.Popen(
                            [sys.executable, "-m", "mhs", *service["command"]],
                            cwd=ROOT,
                            env={**os.environ, **env},
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    batch.append(Process(name, env, popen))
            started.extend(batch)
            for process in batch:  # depends_on: service_healthy
                _wait_ready(process, deadline)
        yield started
    finally:
        for process in reversed(started):
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in reversed(started):
            try:
                process.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()


@pytest.mark.rabbitmq
@pytest.mark.redis
async def test_the_compose_services_run_as_processes(
    compose_as_processes: list[Process], rabbitmq_url: str, unique: str
) -> None:
    processes = compose_as_processes
    assert sorted({p.service for p in processes}) == sorted(SERVICES)
    assert (
        sum(1 for p in processes if p.service == "worker")
        == SERVICES["worker"]["deploy"]["replicas"]
    )
    for process in processes:  # each service's own healthcheck, and the image's
        test = SERVICES[process.service]["healthcheck"]["test"]
        assert _mhs(process.env, *test[2:]).returncode == 0, process.service
        assert _mhs(process.env, *_instruction("HEALTHCHECK")[1:]).returncode == 0
    outbound = next(p for p in processes if p.service == "outbound")
    inject = _mhs(
        outbound.env,
        "inject",
        "--from",
        "A80001",
        "--to",
        "A80002",
        "--to",
        "B80001",
        "--interaction",
        "RCMR_IN010000UK05",
        "--count",
        "6",
        "--json",
    )
    assert inject.returncode == 0, inject.stderr
    assert json.loads(inject.stdout)["accepted"] == 6
    settings = Settings(queue_prefix=f"test-{unique}.")
    broker = create_broker(rabbitmq_url, connection_name=f"test-{unique}-client")
    await broker.start()
    try:
        arrived = 0
        deadline = time.monotonic() + 60
        while arrived < 6:
            assert time.monotonic() < deadline, f"{arrived} of 6 arrived"
            for asid in ("918000000002", "928000000001"):  # A80002 here, B80001 at remote
                await broker.declare_queue(settings.inbound_queue(asid))
                delivery = await broker.get(settings.inbound_queue(asid))
                if delivery is not None:
                    await delivery.ack()
                    arrived += 1
            await asyncio.sleep(0.05)
    finally:
        for party in load_topology().parties:
            await broker.delete_queue(settings.inbound_queue(party.asid))
        await broker.stop()
    # SIGTERM, as `docker compose stop` sends: each role drains and exits 0 within the
    # stop grace period.
    for process in reversed(processes):
        process.popen.send_signal(signal.SIGTERM)
    for process in processes:
        grace = _seconds(SERVICES[process.service]["stop_grace_period"])
        assert process.popen.wait(timeout=grace) == 0, process.service


def test_the_services_follow_the_dependency_order() -> None:
    order = [name for level in _levels() for name in level]
    assert order.index("inbound") < order.index("spine-proxy") < order.index("worker")
    assert order.index("worker") < order.index("outbound")
    assert orjson.loads(SERVICES["outbound"]["environment"]["MHS_ENDPOINT_OVERRIDES"])


def test_the_image_healthcheck_checks_only_what_serve_started(tmp_path: Path) -> None:
    # docker run IMAGE serve worker: the image's environment, its CMD replaced.
    env = {**_image_env(), "MHS_SERVE_FILE": str(tmp_path / "serve.json")}
    env.update(MHS_WORKER_PORT="0", MHS_HOST="127.0.0.1", MHS_LOG_LEVEL="WARNING")
    env.pop("MHS_ROLE", None)
    probe = _instruction("HEALTHCHECK")[1:]
    starting = _mhs({**env}, *probe)
    assert starting.returncode == 1
    assert "nothing is serving yet" in starting.stderr
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mhs", "serve", "worker"],
            cwd=ROOT,
            env={**{k: v for k, v in os.environ.items() if k != "MHS_ROLE"}, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "serve.json").exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve worker never became ready"
            time.sleep(0.2)
        served = json.loads((tmp_path / "serve.json").read_text())["ports"]
        assert list(served) == ["worker"]
        # Ready on the worker's port alone; the other roles' default ports are not asked.
        healthy = _mhs(env, *probe)
        assert healthy.returncode == 0, healthy.stderr
        assert healthy.stderr == ""
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (tmp_path / "serve.json").exists()
    assert _mhs(env, *probe).returncode == 1


def test_the_cluster_override_puts_every_broker_user_on_all_three_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docker/compose.cluster.yaml: three nodes that name each other and share a cookie, and
    every role that uses the broker (the others have no broker to move) given all three."""
    cluster = yaml.safe_load((ROOT / "docker/compose.cluster.yaml").read_text())
    nodes = {name: s for name, s in cluster["services"].items() if name.startswith("rabbitmq")}
    assert set(nodes) == {"rabbitmq", "rabbitmq-2", "rabbitmq-3"}
    discovery = (ROOT / "docker/rabbitmq-cluster.conf").read_text()
    for name, node in nodes.items():
        assert node["hostname"] == name
        assert f"= rabbit@{name}\n" in discovery
        assert "./rabbitmq-cluster.conf:/etc/rabbitmq/conf.d/20-cluster.conf:ro" in node["volumes"]
    assert len({str(sorted(n["environment"].items())) for n in nodes.values()}) == 1
    users = {
        name for name, s in SERVICES.items() if s["command"][1] in ("inbound", "worker", "outbound")
    }
    assert users == {name for name in cluster["services"] if not name.startswith("rabbitmq")}
    for name in users:
        url = cluster["services"][name]["environment"]["MHS_BROKER_URL"]
        monkeypatch.setenv("MHS_BROKER_URL", url)
        assert Settings().broker_url == url
        assert {urlsplit(part).hostname for part in url.split(",")} == set(nodes)
        assert set(cluster["services"][name]["depends_on"]) >= set(nodes)
