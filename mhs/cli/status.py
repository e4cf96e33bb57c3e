"""``mhs status ID``: a message's status timeline, asked of the outbound MHS as its sender or
recipient (``GET /messages/{message_id}``, authenticated with the instance's credential)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from mhs.cli.common import directory_for, err, print_json, settings_from, stdout
from mhs.directory import Directory

# What each step shows beside its time, role and event, in this order.
_DETAIL = (
    "attempt",
    "outcome",
    "status",
    "kind",
    "code",
    "delay_ms",
    "queue",
    "wait_ms",
    "duration_ms",
    "reason",
)


def status(
    message_id: Annotated[str, typer.Argument(help="the message id (its Message-Id)")],
    as_instance: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="ask as this hosted instance (ASID or ODS code); its credential comes from "
            "the topology",
            show_default=False,
        ),
    ] = None,
    credential: Annotated[
        str | None,
        typer.Option(
            help="ask with this instance credential instead of --as",
            envvar="MHS_CREDENTIAL",
            show_default=False,
        ),
    ] = None,
    outbound: Annotated[
        str | None,
        typer.Option(help="outbound MHS URL (default: this host's MHS_OUTBOUND_PORT)"),
    ] = None,
    topology: Annotated[
        Path | None, typer.Option(help="topology file (MHS_TOPOLOGY); unset: packaged")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Show what became of a message: each step across every role, and where it is now.

    Only the instance that sent or received the message may see it; for anyone else the
    message does not exist. Exit 0 when shown, 1 when not found or the MHS did not answer.
    """
    settings = settings_from(topology=topology)
    if (as_instance is None) == (credential is None):
        err.print("[red]give exactly one of --as ASID|ODS and --credential[/red]")
        raise typer.Exit(2)
    if credential is None:
        assert as_instance is not None
        credential = _credential_of(directory_for(settings), as_instance)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    base = (outbound or f"http://{host}:{settings.outbound_port}").rstrip("/")
    code, body = _get(f"{base}/messages/{message_id}", credential)
    if code != 200:
        # The body says "<status>: <reason>" already.
        err.print(body.decode(errors="replace"), markup=False, highlight=False)
        raise typer.Exit(1)
    timeline = orjson.loads(body)
    if json_output:
        print_json(timeline)
        return
    _print(timeline)


def _credential_of(directory: Directory, who: str) -> str:
    party = directory.by_asid(who)
    if party is None:
        party = next((p for p in directory.by_ods(who) if p.hosted), None)
    found = directory.credential_for(party.asid) if party is not None else None
    if found is None:
        err.print(f"[red]{who} is not a hosted instance in {directory.source}[/red]")
        raise typer.Exit(2)
    return found


def _get(url: str, credential: str) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - the operator's own outbound MHS
        url, headers={"Authorization": f"Bearer {credential}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        err.print(f"[red]cannot reach the outbound MHS at {url}[/red]: {error}")
        raise typer.Exit(1) from None


def _print(timeline: dict[str, Any]) -> None:
    out = stdout()
    out.print(
        f"[bold]{timeline['message_id']}[/bold] {timeline.get('interaction_id') or ''}  "
        f"{timeline.get('from_ods') or '?'} ({timeline.get('from_asid') or '?'}) -> "
        f"{timeline.get('to_ods') or '?'} ({timeline.get('to_asid') or '?'})  "
        f"state: [bold]{timeline['state']}[/bold]",
        soft_wrap=True,
    )
    steps = timeline["steps"]
    # Times as HH:MM:SS.mmm, the date (UTC) once in the title.
    table = Table(title=f"{steps[0]['at'][:10]} (UTC)" if steps else None)
    for column in ("time", "role", "event", "detail"):
        table.add_column(column, no_wrap=column != "detail")
    for step in steps:
        detail = "  ".join(f"{key}={step[key]}" for key in _DETAIL if key in step)
        if "interaction_id" in step:
            detail = f"interaction_id={step['interaction_id']}  {detail}"
        table.add_row(step["at"][11:23], step.get("role") or "", step["event"], detail)
    out.print(table)
    if timeline.get("truncated"):
        out.print("(more steps were recorded than are kept: the first ones are shown)")
