"""``python -m mhs.chaos`` (``scripts/chaos``): a load of messages through every fault."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from mhs.chaos import rabbit_cluster
from mhs.chaos.cluster import ChaosConfig
from mhs.chaos.rabbit import RabbitCtlError, rabbitmqctl
from mhs.chaos.run import DEFAULT_PHASES, PHASES, ChaosOptions, chaos
from mhs.cli.common import print_json

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(  # noqa: PLR0917 - Typer reads the options from the parameters
    messages: Annotated[int, typer.Option(help="messages in all, shared by the phases", min=6)] = (
        600
    ),
    broker: Annotated[
        str, typer.Option(help="RabbitMQ URL", envvar="MHS_TEST_BROKER_URL")
    ] = "amqp://guest:guest@127.0.0.1:5672/",
    state: Annotated[
        str, typer.Option(help="Redis URL", envvar="MHS_TEST_REDIS_URL")
    ] = "redis://127.0.0.1:6379/0",
    phases: Annotated[
        str | None,
        typer.Option(
            help=f"comma-separated, from: {', '.join(PHASES)} (default: all but node-loss; "
            "with --cluster, node-loss)"
        ),
    ] = None,
    cluster: Annotated[
        bool,
        typer.Option(help="run on a three-node RabbitMQ cluster (scripts/cluster)"),
    ] = False,
    send_seconds: Annotated[float, typer.Option(help="how long each phase sends", min=1)] = 5.0,
    workers: Annotated[int, typer.Option(help="worker processes", min=1)] = 2,
    keep_logs: Annotated[bool, typer.Option(help="keep the roles' logs after a good run")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Run every role as a process, send MESSAGES through each fault alone and then all
    together, and count what arrived. Exits 1 if anything was lost, or delivered twice
    without the mhs-possible-duplicate flag."""
    chosen = _chosen_phases(phases, cluster=cluster)
    try:
        asyncio.run(rabbitmqctl("status"))
    except RabbitCtlError as error:
        typer.echo(f"chaos needs rabbitmqctl to close connections: {error}", err=True)
        raise typer.Exit(2) from None
    config = _config(broker, state, workers, cluster=cluster)
    options = ChaosOptions(messages=messages, phases=chosen, send_seconds=send_seconds)
    summary = _run(config, options, quiet=json_output, keep_logs=keep_logs)
    print_json(summary)
    raise typer.Exit(0 if summary["ok"] else 1)


def _run(
    config: ChaosConfig, options: ChaosOptions, *, quiet: bool, keep_logs: bool
) -> dict[str, Any]:
    """The run's summary; its logs are kept only for a failed run or with ``keep_logs``."""
    workdir = config.workdir

    def say(line: str) -> None:
        if not quiet:
            typer.echo(line, err=True)

    try:
        summary = asyncio.run(chaos(config, options, say))
    except KeyboardInterrupt:
        if not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    except Exception:
        typer.echo(f"chaos stopped on an error; the roles' logs are in {workdir}", err=True)
        raise
    # A failed run keeps its logs, and says where (summary["logs"]).
    if summary["ok"] and not keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
        summary["logs"] = None
    return summary


def _chosen_phases(phases: str | None, *, cluster: bool) -> tuple[str, ...]:
    """The phases asked for (all but node-loss, or with ``cluster`` node-loss); a name that
    is not a phase, or node-loss without ``cluster``, ends the command with one line."""
    chosen = phases or ("node-loss" if cluster else ",".join(DEFAULT_PHASES))
    names = tuple(p.strip() for p in chosen.split(",") if p.strip())
    unknown = sorted(set(names) - set(PHASES))
    if unknown:
        choices = ", ".join(PHASES)
        typer.echo(f"chaos: unknown phase {unknown[0]!r}: choose from {choices}", err=True)
        raise typer.Exit(2)
    if "node-loss" in names and not cluster:
        typer.echo("chaos: the node-loss phase runs on a RabbitMQ cluster: add --cluster", err=True)
        raise typer.Exit(2)
    if cluster and set(names) != {"node-loss"}:
        # The other phases' levers (rabbitmqctl closes, the confirm-loss forwarder) reach
        # only the service node.
        typer.echo("chaos: with --cluster, only the node-loss phase runs", err=True)
        raise typer.Exit(2)
    return names


def _config(broker: str, state: str, workers: int, *, cluster: bool) -> ChaosConfig:
    """Where the run goes: RabbitMQ at ``broker``, or with ``cluster`` the three-node cluster
    (started if down); its logs in a new temporary folder."""
    nodes = _cluster_nodes() if cluster else []
    return ChaosConfig(
        broker_url=rabbit_cluster.broker_url(nodes) if nodes else broker,
        state_url=state,
        workdir=Path(tempfile.mkdtemp(prefix="mhs-chaos-")),
        workers=workers,
        rabbit_nodes=nodes,
    )


def _cluster_nodes() -> list[rabbit_cluster.Node]:
    nodes = rabbit_cluster.nodes(3)
    try:
        rabbit_cluster.start(nodes)
    except rabbit_cluster.ClusterError as error:
        typer.echo(f"chaos --cluster: {error}", err=True)
        raise typer.Exit(2) from None
    return nodes


app()
