"""A RabbitMQ cluster of several nodes on this machine, beside its service node, for proving
that the roles scale out and survive losing a node (``scripts/cluster start|stop|status``).

Each node is Debian's ``rabbitmq-server`` with its own name (``mhs-c<N>@localhost``), AMQP
port, distribution port, data and log folders, and a config file of its own (the system
one pins the service node's listener); they run as the ``rabbitmq`` user so that they share
its Erlang cookie, and the second and later nodes join the first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import typer

DEFAULT_DIR = Path(tempfile.gettempdir()) / "mhs-cluster"
DEFAULT_BASE_PORT = 5681
DIST_PORT_OFFSET = 20000
START_TIMEOUT_S = 60
CTL_TIMEOUT_S = 60


class ClusterError(Exception):
    """A node would not start, join or answer; the text says which and why."""


@dataclass(frozen=True, slots=True)
class Node:
    """One node of the cluster."""

    index: int
    base_port: int
    root: Path

    @property
    def name(self) -> str:
        return f"mhs-c{self.index}@localhost"

    @property
    def port(self) -> int:
        return self.base_port + self.index - 1

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def home(self) -> Path:
        return self.root / f"c{self.index}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": _cookie_home(),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq"),
            "RABBITMQ_DIST_PORT": str(self.port + DIST_PORT_OFFSET),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_PID_FILE": str(self.home / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
        }


def _cookie_home() -> str:
    # Every node and rabbitmqctl must share one Erlang cookie: the rabbitmq user's.
    return "/var/lib/rabbitmq" if os.geteuid() == 0 else os.environ.get("HOME", "/")


def _as_rabbitmq(args: list[str]) -> list[str]:
    return ["runuser", "-u", "rabbitmq", "--", *args] if os.geteuid() == 0 else args


def _run(node: Node, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(  # noqa: S603 - fixed executable, arguments are ours
            _as_rabbitmq(["rabbitmqctl", "-q", "-n", node.name, *args]),
            env=node.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=CTL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ClusterError(
            f"rabbitmqctl -n {node.name} {' '.join(args)} did not answer within "
            f"{CTL_TIMEOUT_S} s: see {node.home / 'log'}"
        ) from None
    if check and result.returncode != 0:
        raise ClusterError(f"rabbitmqctl -n {node.name} {' '.join(args)}: {result.stderr.strip()}")
    return result


def nodes(count: int, base_port: int = DEFAULT_BASE_PORT, root: Path = DEFAULT_DIR) -> list[Node]:
    """The ``count`` nodes of a cluster whose first AMQP port is ``base_port``."""
    return [Node(i, base_port, root) for i in range(1, count + 1)]


def broker_url(cluster: list[Node]) -> str:
    """MHS_BROKER_URL for the cluster: every node's URL, comma-separated."""
    return ",".join(node.url for node in cluster)


def _prepare(node: Node) -> None:
    for folder in ("mnesia", "log"):
        (node.home / folder).mkdir(parents=True, exist_ok=True)
    (node.home / "rabbitmq.conf").write_text(
        f"listeners.tcp.local = 127.0.0.1:{node.port}\nloopback_users = none\n"
    )
    (node.home / "enabled_plugins").write_text("[rabbitmq_amqp1_0].\n")
    if os.geteuid() == 0:
        shutil.chown(node.root, "rabbitmq", "rabbitmq")
        for path in [node.home, *node.home.rglob("*")]:
            shutil.chown(path, "rabbitmq", "rabbitmq")


def _launch(node: Node) -> None:
    if shutil.which("rabbitmq-server") is None:
        raise ClusterError("rabbitmq-server is not installed: apt-get install rabbitmq-server")
    _prepare(node)
    command = _as_rabbitmq(["rabbitmq-server", "-detached"])
    subprocess.run(command, env=node.env(), check=True)  # noqa: S603 - fixed executable


def _await(node: Node) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while _run(node, "await_startup", "--timeout", "5", check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{node.name} did not start within {START_TIMEOUT_S} s: see {node.home / 'log'}"
            )
        time.sleep(0.5)


def start(cluster: list[Node]) -> None:
    """Start every node that is not running and join the later ones to the first."""
    first = cluster[0]
    down = [node for node in cluster if not running(node)]
    # All at once: a node that was not the last of its cluster to stop waits for its peers
    # before it finishes starting.
    for node in down:
        _launch(node)
    for node in down:
        _await(node)
    members = set(members_of(first))
    for node in cluster[1:]:
        if node.name not in members:
            _run(node, "stop_app")
            _run(node, "join_cluster", first.name)
            _run(node, "start_app")


def running(node: Node) -> bool:
    """Whether ``node`` runs and answers."""
    return _run(node, "status", check=False).returncode == 0


def members_of(node: Node) -> list[str]:
    """The running members of ``node``'s cluster."""
    result = _run(node, "cluster_status", "--formatter", "json")
    status = json.loads(result.stdout)
    return sorted(status.get("running_nodes", []))


def leaders(cluster: list[Node], prefix: str) -> dict[str, Node]:
    """Queue name -> the node leading it, for the quorum queues whose names start with
    ``prefix``, as the first running node sees them."""
    asking = next((node for node in cluster if running(node)), None)
    if asking is None:
        raise ClusterError("no node of the cluster runs")
    answer = _run(asking, "list_queues", "name", "leader", "--formatter", "json")
    listing = json.loads(answer.stdout)
    by_name = {node.name: node for node in cluster}
    return {
        queue["name"]: by_name[queue["leader"]]
        for queue in listing
        if queue["name"].startswith(prefix) and queue.get("leader") in by_name
    }


def pause(node: Node) -> None:
    """Stop RabbitMQ on ``node`` but keep its Erlang node up (``stop_app``): its clients are
    cut off and its queue replicas go down, as when the node fails; ``resume`` brings it back
    in seconds."""
    _run(node, "stop_app")


def resume(node: Node) -> None:
    """Start RabbitMQ on a paused ``node`` again; it rejoins its cluster."""
    _run(node, "start_app")


def stop_node(node: Node) -> None:
    """Stop ``node`` (its data stays: it rejoins when started again)."""
    with contextlib.suppress(ClusterError):
        _run(node, "stop", check=False)


def stop(cluster: list[Node], *, remove: bool) -> None:
    """Stop every node; with ``remove``, delete their data too."""
    for node in reversed(cluster):
        stop_node(node)
    if remove:
        shutil.rmtree(cluster[0].root, ignore_errors=True)


app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
Count = typer.Option(3, "--nodes", min=1, max=9, help="how many nodes")
BasePort = typer.Option(DEFAULT_BASE_PORT, "--base-port", help="the first node's AMQP port")
Root = typer.Option(DEFAULT_DIR, "--dir", help="where the nodes keep their data and logs")


@app.command("start")
def start_command(count: int = Count, base_port: int = BasePort, root: Path = Root) -> None:
    """Start the cluster (or the nodes of it that are down) and print MHS_BROKER_URL."""
    cluster = nodes(count, base_port, root)
    try:
        start(cluster)
    except ClusterError as error:
        typer.echo(f"cluster: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"MHS_BROKER_URL={broker_url(cluster)}")


@app.command("stop")
def stop_command(
    count: int = Count,
    base_port: int = BasePort,
    root: Path = Root,
    remove: bool = typer.Option(False, "--remove", help="delete the nodes' data too"),
) -> None:
    """Stop every node of the cluster."""
    stop(nodes(count, base_port, root), remove=remove)


@app.command("status")
def status_command(count: int = Count, base_port: int = BasePort, root: Path = Root) -> None:
    """Each node, up or down, and the members the first running one sees."""
    cluster = nodes(count, base_port, root)
    up = [node for node in cluster if running(node)]
    for node in cluster:
        typer.echo(f"{node.name}  {node.url}  {'up' if node in up else 'down'}")
    if up:
        typer.echo(f"members: {', '.join(members_of(up[0]))}")
    raise typer.Exit(0 if len(up) == len(cluster) else 1)


if __name__ == "__main__":
    app()
