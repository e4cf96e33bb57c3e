"""``mhs simulate``: every role, real traffic between instances, and an honest summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mhs.cli.common import (
    BrokerOpt,
    TopologyOpt,
    announced_start,
    directory_for,
    finish_run,
    progress_bar,
    run_roles,
    settings_from,
    stdout,
)
from mhs.cli.simulate_kinds import simulate_topology_kinds
from mhs.directory import Directory
from mhs.observe.logs import configure_logging
from mhs.settings import Settings
from mhs.simulate.run import SimulationOptions, succeeded
from mhs.simulate.run import simulate as run_simulation


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
    topology_kind: Annotated[
        str | None,
        typer.Option(
            help="instead: GP Connect traffic per consumer kind (mhs, cma, tie, portal, all)"
        ),
    ] = None,
) -> None:
    """Start every role, drive traffic between instances through faults, print a summary.

    Exits 1 if any accepted message was lost or duplicated, or did not end as the
    directory predicts.
    """
    settings = settings_from(broker_url=broker, topology=topology)
    directory = directory_for(settings, instances)
    if log_file is not None:
        configure_logging(settings.log_level, "json", stream=log_file.open("a", encoding="utf-8"))
    else:
        configure_logging("ERROR", "json", stream=sys.stderr)
    if topology_kind is not None:
        simulate_topology_kinds(settings, directory, topology_kind, json_output=json_output)
    opts = SimulationOptions(
        messages=messages,
        workers=workers,
        concurrency=concurrency,
        first_attempt_failure_rate=fail_rate,
        soap_fault_rate=soap_fault_rate,
        refused_share=refused_share,
        seed=seed,
    )
    summary = _run_with_progress(settings, directory, opts, transient=json_output)
    finish_run(summary, succeeded(summary), json_output=json_output, show=_print_summary)


def _run_with_progress(
    settings: Settings, directory: Directory, opts: SimulationOptions, *, transient: bool
) -> dict[str, Any]:
    with progress_bar(transient=transient, disable=not sys.stderr.isatty()) as bar:
        sent = bar.add_task("sent", total=opts.messages)
        settled = bar.add_task("arrived", total=opts.messages)

        async def simulation() -> dict[str, Any]:
            async with announced_start(settings) as started:

                def advance(kind: str, n: int) -> None:
                    if kind == "started":
                        started()
                    else:
                        bar.advance(sent if kind == "sent" else settled, n)

                return await run_simulation(settings, directory, opts, advance)

        return run_roles(simulation())


def _print_summary(summary: dict[str, Any]) -> None:
    out = stdout()
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
        "flagged_duplicates",
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
