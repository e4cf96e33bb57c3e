"""``mhs config``: the effective configuration (defaults, MHS_* environment, flags)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from mhs.cli.common import print_json, settings_from, stdout
from mhs.settings import Settings


def sources(settings: Settings, flags: dict[str, Any]) -> dict[str, str]:
    """Where each setting's value came from: ``flag``, ``env`` (MHS_*) or ``default``."""
    environment = {name.upper() for name in os.environ}
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    return {
        name: "flag"
        if flags.get(name) is not None
        else "env"
        if f"{prefix}{name.upper()}" in environment
        else "default"
        for name in type(settings).model_fields
    }


def config(
    show: Annotated[bool, typer.Option("--show", help="print every setting")] = False,
    broker: Annotated[
        str | None, typer.Option("--broker", help="override MHS_BROKER_URL", show_default=False)
    ] = None,
    topology: Annotated[
        Path | None, typer.Option("--topology", help="override MHS_TOPOLOGY", show_default=False)
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Check the configuration; with --show, print the effective value of every setting and
    where it came from. Passwords in URLs are never printed."""
    flags = {"broker_url": broker, "topology": topology}
    settings = settings_from(**flags)
    values = settings.redacted()
    origin = sources(settings, flags)
    if json_output:
        body = {"settings": values, "sources": origin} if show else {"ok": True}
        print_json(body)
        return
    if not show:
        from_env = sum(1 for where in origin.values() if where == "env")
        typer.echo(f"configuration valid ({from_env} settings from MHS_* variables)")
        return
    table = Table(title="Effective configuration")
    for column in ("setting", "value", "from"):
        table.add_column(column)
    for name, value in values.items():
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        where = origin[name]
        table.add_row(f"MHS_{name.upper()}", shown, where)
    stdout().print(table)
