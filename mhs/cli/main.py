"""``mhs``: serve roles, simulate a datacentre, inspect the topology, check health."""

from __future__ import annotations

import asyncio
import sys
import urllib.error
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mhs.cli.broker_users import app as broker_users_app
from mhs.cli.config import config as config_cmd
from mhs.cli.dlq import app as dlq_app
from mhs.cli.faults import app as faults_app
from mhs.cli.gpconnect import app as gpconnect_app
from mhs.cli.inject import inject as inject_cmd
from mhs.cli.logs import app as logs_app
from mhs.cli.status import status as status_cmd
from mhs.directory import Directory, TopologyError, generate_topology, load_topology
from mhs.observe.logs import configure_logging
from mhs.runner import ROLES, Cluster, RoleName, wait_for_stop_signal
from mhs.settings import Settings

app = typer.Typer(
    name="mhs",
    help="MHS Simulator: a multi-tenant NHS Spine MHS, Spine proxy and inbound MHS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(dlq_app, name="dlq")
app.add_typer(broker_users_app, name="broker-users")
app.add_typer(gpconnect_app, name="gpconnect")
app.add_typer(faults_app, name="faults")
app.command("config")(config_cmd)
app.add_typer(logs_app, name="logs")
app.command("inject")(inject_cmd)
app.command("status")(status_cmd)
err = Console(stderr=True)
T = TypeVar("T")

BrokerOpt = Annotated[
    str | None,
    typer.Option("--broker", help="amqp://user:pass@host:5672/ (MHS_BROKER_URL); unset: embedded"),
]
TopologyOpt = Annotated[
    Path | None,
    typer.Option("--topology", help="topology file, YAML or JSON (MHS_TOPOLOGY); unset: packaged"),
]


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def _settings(**flags: Any) -> Settings:
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            field = ".".join(str(p) for p in item["loc"])
            err.print(
                f"[red]configuration error[/red]: MHS_{field.upper()} / --{field}: {item['msg']}"
            )
        raise typer.Exit(2) from None


def _directory(settings: Settings, instances: int | None = None) -> Directory:
    if instances is not None:
        if settings.topology is not None:
            err.print("[red]--instances and --topology cannot be used together[/red]")
            raise typer.Exit(2)
        return Directory(
            generate_topology(hosted=instances, remote=max(2, instances // 4)),
            source=f"<generated: {instances} hosted instances>",
        )
    try:
        return load_topology(settings.topology)
    except TopologyError as error:
        err.print(f"[red]topology error[/red]\n{error}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    roles: Annotated[
        list[str], typer.Argument(help="outbound, worker, spine-proxy, inbound, gp-provider or all")
    ],
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
    settings = _settings(broker_url=broker, topology=topology)
    configure_logging(settings.log_level, settings.log_format)
    directory = _directory(settings)

    async def main() -> None:
        cluster = Cluster(settings, directory)
        await cluster.start(chosen, workers=workers)
        try:
            await wait_for_stop_signal()
        finally:
            await cluster.stop()

    _run(main())


@app.command()
def simulate(
    messages: Annotated[int, typer.Option(help="messages to send", min=1)] = 2000,
    instances: Annotated[
        int | None, typer.Option(help="hosted instances to generate", min=2)
    ] = None,
    broker: BrokerOpt = None,
    topology: TopologyOpt = None,
    workers: Annotated[int, typer.Option(help="delivery workers", min=1)] = 2,
    concurrency: Annotated[int, typer.Option(help="requests in flight", min=1)] = 64,
    fail_rate: Annotated[
        float, typer.Option(help="share of first attempts the proxy fails with 503", min=0, max=1)
    ] = 0.1,
    soap_fault_rate: Annotated[
        float, typer.Option(help="share of messages given SOAP fault 206 twice", min=0, max=1)
    ] = 0.03,
    refused_share: Annotated[
        float, typer.Option(help="share sent to pairs Spine refuses", min=0, max=1)
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="traffic plan seed")] = 1,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    log_file: Annotated[Path | None, typer.Option(help="write the roles' JSON logs here")] = None,
) -> None:
    """Start every role, drive traffic between instances through faults, print a summary.

    Exits 1 if any accepted message was lost or duplicated, or did not end as the
    directory predicts.
    """
    from mhs.simulate.run import SimulationOptions, succeeded
    from mhs.simulate.run import simulate as run_simulation

    settings = _settings(broker_url=broker, topology=topology)
    directory = _directory(settings, instances)
    if log_file is not None:
        configure_logging(settings.log_level, "json", stream=log_file.open("a", encoding="utf-8"))
    else:
        configure_logging("ERROR", "json", stream=sys.stderr)
    opts = SimulationOptions(
        messages=messages,
        workers=workers,
        concurrency=concurrency,
        first_attempt_failure_rate=fail_rate,
        soap_fault_rate=soap_fault_rate,
        refused_share=refused_share,
        seed=seed,
    )
    show = sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
        transient=json_output,
    ) as bar:
        sent = bar.add_task("sent", total=messages)
        settled = bar.add_task("arrived", total=messages)

        def advance(kind: str, n: int) -> None:
            bar.advance(sent if kind == "sent" else settled, n)

        summary = _run(run_simulation(settings, directory, opts, advance))
    ok = succeeded(summary)
    summary["ok"] = ok
    if json_output:
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_summary(summary)
    raise typer.Exit(0 if ok else 1)


def _print_summary(summary: dict[str, Any]) -> None:
    out = Console()
    out.print(
        f"[bold]{'OK' if summary['ok'] else 'FAILED'}[/bold]: "
        f"{summary['accepted']} accepted from {summary['instances']} instances"
    )
    for key in (
        "delivered",
        "rejected",
        "dead_lettered",
        "retried",
        "lost",
        "duplicates",
        "refused_at_outbound",
        "unexpected_outcomes",
        "p50_ms",
        "p99_ms",
        "messages_per_s",
        "elapsed_s",
    ):
        out.print(f"  {key:<20} {summary[key]}")
    if summary["rejection_reasons"]:
        out.print("  rejection reasons:")
        for reason, count in summary["rejection_reasons"].items():
            out.print(f"    {count:>6}  {reason}")


@app.command("topology")
def topology_cmd(
    topology: TopologyOpt = None,
    instances: Annotated[
        int | None, typer.Option(help="generate this many hosted instances", min=2)
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Print the effective topology: instances, agreements and interactions."""
    settings = _settings(topology=topology)
    directory = _directory(settings, instances)
    data: dict[str, Any] = {
        "source": directory.source,
        "instances": [
            {
                "name": p.name,
                "ods_code": p.ods_code,
                "asid": p.asid,
                "party_key": p.party_key,
                "cpa_id": p.cpa_id,
                "mhs": p.mhs,
                "hosted": p.hosted,
                "endpoint": p.endpoint,
                "credential": directory.credential_for(p.asid),
                "interactions": sorted(p.interactions),
            }
            for p in directory.parties
        ],
        "agreements": directory.agreement_pairs(),
        "interactions": [
            {"id": key, **value.model_dump(mode="json")}
            for key, value in directory.interactions.items()
        ],
    }
    if json_output:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(title=f"Topology {directory.source}")
    for column in ("mhs", "name", "ODS", "ASID", "party key", "interactions"):
        table.add_column(column)
    for party in directory.parties:
        table.add_row(
            party.mhs + (" (hosted)" if party.hosted else ""),
            party.name,
            party.ods_code,
            party.asid,
            party.party_key,
            str(len(party.interactions)),
        )
    out = Console()
    out.print(table)
    out.print(
        f"{len(data['agreements'])} agreeing pairs; interactions: "
        + ", ".join(i["id"] for i in data["interactions"])
    )


@app.command()
def healthcheck(
    role: Annotated[
        str,
        typer.Argument(
            envvar="MHS_ROLE", help="outbound, worker, spine-proxy, inbound, gp-provider or all"
        ),
    ],
    timeout: Annotated[float, typer.Option(help="seconds per role")] = 3.0,
) -> None:
    """Exit 0 if ROLE on this host answers ready, 1 otherwise (for container HEALTHCHECK)."""
    settings = _settings()
    ports = {
        "outbound": settings.outbound_port,
        "worker": settings.worker_port,
        "spine-proxy": settings.spine_proxy_port,
        "inbound": settings.inbound_port,
        "gp-provider": settings.gp_provider_port,
    }
    if role != "all" and role not in ports:
        err.print(f"[red]unknown role {role!r}[/red]: choose from {', '.join(ports)}, all")
        raise typer.Exit(2)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    for name in ports if role == "all" else [role]:
        url = f"http://{host}:{ports[name]}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                ready = response.status == 200
        except (urllib.error.URLError, OSError) as error:
            err.print(f"{name} not ready: {error}")
            raise typer.Exit(1) from None
        if not ready:
            raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()
