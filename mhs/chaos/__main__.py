"""``python -m mhs.chaos`` (``scripts/chaos``): a load of messages through every fault."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from mhs.chaos.cluster import ChaosConfig
from mhs.chaos.rabbit import RabbitCtlError, rabbitmqctl
from mhs.chaos.run import PHASES, ChaosOptions, chaos
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
        str, typer.Option(help=f"comma-separated, from: {', '.join(PHASES)}")
    ] = ",".join(PHASES),
    send_seconds: Annotated[float, typer.Option(help="how long each phase sends", min=1)] = 5.0,
    workers: Annotated[int, typer.Option(help="worker processes", min=1)] = 2,
    keep_logs: Annotated[bool, typer.Option(help="keep the roles' logs after a good run")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Run every role as a process, send MESSAGES through each fault alone and then all
    together, and count what arrived. Exits 1 if anything was lost, or delivered twice
    without the mhs-possible-duplicate flag."""
    try:
        asyncio.run(rabbitmqctl("status"))
    except RabbitCtlError as error:
        typer.echo(f"chaos needs rabbitmqctl to close connections: {error}", err=True)
        raise typer.Exit(2) from None
    workdir = Path(tempfile.mkdtemp(prefix="mhs-chaos-"))
    config = ChaosConfig(broker_url=broker, state_url=state, workdir=workdir, workers=workers)
    options = ChaosOptions(
        messages=messages,
        phases=tuple(p.strip() for p in phases.split(",") if p.strip()),
        send_seconds=send_seconds,
    )

    def say(line: str) -> None:
        if not json_output:
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
    print_json(summary)
    raise typer.Exit(0 if summary["ok"] else 1)


app()
