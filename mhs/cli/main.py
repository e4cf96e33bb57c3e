"""``mhs``: serve roles, simulate a datacentre, inspect the topology, check health."""

from __future__ import annotations

from typing import Annotated

import typer

from mhs.cli.audit import app as audit_app
from mhs.cli.broker_users import app as broker_users_app
from mhs.cli.common import (
    BrokerOpt,
    TopologyOpt,
    announced_start,
    directory_for,
    err,
    run_roles,
    settings_from,
)
from mhs.cli.config import config as config_cmd
from mhs.cli.dlq import app as dlq_app
from mhs.cli.faults import app as faults_app
from mhs.cli.gpconnect import app as gpconnect_app
from mhs.cli.health import ROLE_HELP
from mhs.cli.health import healthcheck as healthcheck_cmd
from mhs.cli.inject import inject as inject_cmd
from mhs.cli.logs import app as logs_app
from mhs.cli.simulate import simulate as simulate_cmd
from mhs.cli.status import status as status_cmd
from mhs.cli.topology import topology as topology_cmd
from mhs.heap import settle_after_start
from mhs.observe.logs import configure_logging
from mhs.runner import (
    ROLES,
    Cluster,
    RoleName,
    local_others,
    serve_file,
    wait_for_stop_signal,
)

app = typer.Typer(
    name="mhs",
    help="MHS Simulator: a multi-tenant NHS Spine MHS, Spine proxy and inbound MHS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(dlq_app, name="dlq")
app.add_typer(audit_app, name="audit")
app.add_typer(broker_users_app, name="broker-users")
app.add_typer(gpconnect_app, name="gpconnect")
app.add_typer(faults_app, name="faults")
app.command("config")(config_cmd)
app.command("healthcheck")(healthcheck_cmd)
app.add_typer(logs_app, name="logs")
app.command("inject")(inject_cmd)
app.command("status")(status_cmd)
app.command("simulate")(simulate_cmd)
app.command("topology")(topology_cmd)


@app.command()
def serve(
    roles: Annotated[list[str], typer.Argument(help=ROLE_HELP)],
    broker: BrokerOpt = None,
    topology: TopologyOpt = None,
    workers: Annotated[int, typer.Option(help="delivery workers in this process", min=1)] = 1,
) -> None:
    """Run one or more roles until SIGTERM/SIGINT (what a container runs)."""
    unknown = [r for r in roles if r != "all" and r not in ROLES]
    if unknown:
        err.print(f"[red]unknown role {unknown[0]!r}[/red]: choose from {', '.join(ROLES)}, all")
        raise typer.Exit(2)
    chosen: list[RoleName] = [r for r in ROLES if r in roles or "all" in roles]
    settings = settings_from(broker_url=broker, topology=topology)
    configure_logging(settings.log_level, settings.log_format)
    directory = directory_for(settings)

    async def main() -> None:
        cluster = Cluster(settings, directory)
        async with announced_start(settings) as started:
            extra = local_others(settings, directory) if "all" in roles else []
            await cluster.start(chosen, workers=workers, extra_inbound=extra)
            started()
        settle_after_start()
        try:
            with serve_file(settings, cluster.urls):
                await wait_for_stop_signal()
        finally:
            await cluster.stop()

    run_roles(main())


def main() -> None:
    """Console-script entry point."""
    app()
