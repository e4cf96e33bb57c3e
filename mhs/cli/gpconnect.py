"""``mhs gpconnect``: what an integration tester needs to make GP Connect requests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from mhs.cli.common import directory_for, settings_from
from mhs.provider.records import patients_of
from mhs.ssp.consumer_jwt import consumer_jwt

app = typer.Typer(help="GP Connect helpers: consumer JWTs and the simulated patients.")


@app.command()
def jwt(
    audience: Annotated[
        str, typer.Option(help="the provider's service root (the aud claim)")
    ] = "https://provider.invalid",
    scope: Annotated[str, typer.Option(help="requested_scope")] = "patient/*.read",
    ods_code: Annotated[
        str | None,
        typer.Option(help="requesting_organization; leave out to let the outbound MHS fill it"),
    ] = None,
) -> None:
    """Print an unsigned GP Connect JWT (valid for 5 minutes from now)."""
    sys.stdout.write(consumer_jwt(audience=audience, scope=scope, ods_code=ods_code) + "\n")


@app.command()
def patients(
    ods_code: Annotated[str, typer.Argument(help="the providing practice's ODS code")],
    topology: Annotated[Path | None, typer.Option("--topology", help="topology file")] = None,
) -> None:
    """Print the simulated patients registered at a practice (JSON lines)."""
    directory = directory_for(settings_from(topology=topology))
    if directory.gpconnect_provider(ods_code) is None:
        typer.echo(f"no GP Connect provider is registered for {ods_code}", err=True)
        raise typer.Exit(1)
    for patient in patients_of(ods_code):
        line = {
            "nhs_number": patient.nhs_number,
            "family": patient.family,
            "given": patient.given,
            "birth_date": patient.birth_date,
        }
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
