"""``mhs topology``: the effective topology, as a table or JSON."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from mhs.cli.common import TopologyOpt, directory_for, print_json, settings_from, stdout
from mhs.directory import Directory
from mhs.settings import Settings


def topology(
    topology: TopologyOpt = None,
    instances: Annotated[
        int | None, typer.Option(help="generate this many hosted instances", min=2)
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Print the effective topology: instances, agreements and interactions."""
    settings = settings_from(topology=topology)
    directory = directory_for(settings, instances)
    data: dict[str, Any] = {
        "source": directory.source,
        "endpoints": _endpoints(settings, directory),
        "instances": [
            {
                "name": p.name,
                "ods_code": p.ods_code,
                "asid": p.asid,
                "party_key": p.party_key,
                "cpa_id": p.cpa_id,
                "mhs": p.mhs,
                "kind": p.kind,
                "hosted": p.hosted,
                "endpoint": settings.endpoint_of(p.mhs, p.endpoint),
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
        print_json(data)
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
    out = stdout()
    out.print(table)
    out.print(f"Spine proxy: {settings.proxy_url}")
    for m in data["endpoints"]["mhs"]:
        gpconnect = f", GP Connect {m['gpconnect_endpoint']}" if m["gpconnect_endpoint"] else ""
        out.print(f"MHS {m['name']}: {m['endpoint']}{gpconnect}")
    out.print(
        f"{len(data['agreements'])} agreeing pairs; interactions: "
        + ", ".join(i["id"] for i in data["interactions"])
    )


def _endpoints(settings: Settings, directory: Directory) -> dict[str, Any]:
    """The effective endpoints: templates filled from the ports, overrides applied."""
    return {
        "spine_proxy": settings.proxy_url,
        "mhs": [
            {
                "name": m.name,
                "hosted": m.hosted,
                "endpoint": settings.endpoint_of(m.name, m.endpoint),
                "gpconnect_endpoint": settings.gpconnect_of(m.name, m.gpconnect_endpoint),
            }
            for m in directory.topology.mhs
        ],
    }
