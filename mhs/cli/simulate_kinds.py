"""``mhs simulate --topology-kind``: GP Connect traffic per consumer kind, and its summary."""

from __future__ import annotations

import typer

from mhs.cli.common import announced_start, finish_run, run_roles, stdout
from mhs.directory import Directory
from mhs.settings import Settings
from mhs.simulate.kind_plan import KINDS
from mhs.simulate.kind_run import kinds_succeeded, simulate_kinds

CHOICES = (*KINDS, "all")


def chosen_kinds(value: str) -> tuple[str, ...]:
    """``all`` or one kind; typer.BadParameter names the choices."""
    if value == "all":
        return KINDS
    if value not in KINDS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(CHOICES)}")
    return (value,)


def simulate_topology_kinds(
    settings: Settings, directory: Directory, kind: str, *, json_output: bool
) -> None:
    """Run the per-kind GP Connect simulation; exit 0 if it went as the directory says."""
    kinds = chosen_kinds(kind)

    async def simulation() -> dict[str, object]:
        async with announced_start(settings) as started:
            started()
            return await simulate_kinds(settings, directory, kinds)

    summary = run_roles(simulation())
    finish_run(summary, kinds_succeeded(summary), json_output=json_output, show=_print)


def _print(summary: dict[str, object]) -> None:
    out = stdout()
    out.print(f"[bold]{'OK' if summary['ok'] else 'FAILED'}[/bold]: GP Connect per consumer kind")
    kinds = summary["kinds"]
    assert isinstance(kinds, dict)
    out.print(
        f"  providers looked up in SDS: {summary['sds_lookups']} "
        f"({summary['sds_unanswered']} not found)"
    )
    out.print(
        f"  {'kind':<8}{'sent':>6}{'accepted':>10}{'refused':>9}{'audited':>9}"
        f"{'unexpected':>12}{'wrong origin':>14}"
    )
    for kind, row in kinds.items():
        out.print(
            f"  {kind:<8}{row['sent']:>6}{row['accepted']:>10}{row['refused']:>9}"
            f"{row['audited']:>9}{row['unexpected_outcomes']:>12}"
            f"{row['wrong_originating_organisation']:>14}"
        )
    for kind, row in kinds.items():
        pds = row["pds_queries"]
        out.print(
            f"  {kind:<8}PDS queries through Spine: {pds.get('sent', 0)} sent, "
            f"{pds.get('answered_to_sender', 0)} answered to the system that asked"
        )
    for kind, row in kinds.items():
        for reason, count in row["refusal_reasons"].items():
            out.print(f"    {kind:<8}{count:>6}  {reason}")
