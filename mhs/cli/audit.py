"""``mhs audit``: the GP Connect provider's audit trail, listed and verified, read from a
running provider (``GET /audit``) or straight from its file."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from mhs.cli.common import JsonOpt, directory_for, err, print_json, settings_from, stdout
from mhs.provider.audit import ChainHead, ChainReport, shown, verify
from mhs.provider.audit_file import audit_path, read_lines
from mhs.settings import Settings
from mhs.tls import client_context

app = typer.Typer(
    help="The GP Connect provider's audit trail: list it, verify its hash chain.",
    no_args_is_help=True,
)

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="a running provider (http://host:8085; its GET /audit); with TLS on, the "
        "MHS_TLS_* certificate must be the Spine proxy's",
        show_default=False,
    ),
]
FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file",
        help="an audit file (default: MHS_AUDIT_DIR/<served MHS>.audit.jsonl)",
        show_default=False,
    ),
]


@app.command("list")
def list_cmd(
    url: UrlOpt = None,
    file: FileOpt = None,
    since: Annotated[int, typer.Option(help="only entries after this seq", min=0)] = 0,
    limit: Annotated[int | None, typer.Option(help="at most this many", min=1)] = None,
    json_output: JsonOpt = False,
) -> None:
    """The audit entries, oldest first: who asked for what, and the answer.

    Exit 0 when listed, 1 when the provider did not answer, 2 when the file is not there.
    """
    entries, head = _load(url, file, since, limit)
    if json_output:
        print_json({"head": {"seq": head.seq, "hash": head.hash}, "entries": entries})
        return
    table = Table(title=f"{len(entries)} audit entries; chain head {head.seq} {head.hash[:12]}")
    for column in ("seq", "time (UTC)", "from ASID", "organisation", "practitioner"):
        table.add_column(column, no_wrap=True)
    for column in ("interaction", "patient", "outcome"):
        table.add_column(column)
    for entry in entries:
        table.add_row(*_row(entry))
    stdout().print(table)


@app.command("verify")
def verify_cmd(url: UrlOpt = None, file: FileOpt = None, json_output: JsonOpt = False) -> None:
    """Check the hash chain: exit 0 if it holds, 1 naming the first broken entry.

    An entry edited, removed, inserted or moved breaks it; 1 also when the provider did not
    answer, 2 when the file is not there. From a file, entries cut off its end go unseen;
    from --url, the provider's own chain head (its last write) must be in the chain, which
    shows them.
    """
    entries, head = _load(url, file, 0, None)
    report = verify(entries, expect=head if url is not None else None)
    if json_output:
        print_json(_report_json(report))
    if report.broken is not None:
        err.print(f"[red]audit chain broken[/red] at {report.broken}", highlight=False)
        raise typer.Exit(1)
    if not json_output:
        stdout().print(
            f"audit chain holds: {report.entries} entries, head {report.head.seq} "
            f"{report.head.hash}",
            highlight=False,
        )


def _load(
    url: str | None, file: Path | None, since: int, limit: int | None
) -> tuple[list[Any], ChainHead]:
    """The entries (decoded; a damaged line as its text) and the chain head."""
    settings = settings_from()
    if url is not None and file is not None:
        err.print("[red]give --url or --file, not both[/red]")
        raise typer.Exit(2)
    if url is not None:
        return _from_provider(settings, url, since, limit)
    path = file or _default_file(settings)
    if not path.is_file():
        err.print(f"[red]no audit file at {path}[/red]: give --file, --url, or MHS_AUDIT_DIR")
        raise typer.Exit(2)
    entries = [shown(line) for line in read_lines(path)]
    head = ChainHead()
    if entries and isinstance(entries[-1].get("seq"), int):
        head = ChainHead(entries[-1]["seq"], str(entries[-1].get("hash")))
    return entries[since:][:limit], head


def _default_file(settings: Settings) -> Path:
    directory = directory_for(settings)
    served = directory.mhs(settings.local_mhs) if settings.local_mhs else directory.hosted_mhs
    return audit_path(settings.audit_dir, served.name if served else "datacentre")


def _from_provider(
    settings: Settings, url: str, since: int, limit: int | None
) -> tuple[list[Any], ChainHead]:
    base = url.rstrip("/").removesuffix("/audit")
    query = f"?since={since}" + (f"&limit={limit}" if limit is not None else "")
    request = urllib.request.Request(  # noqa: S310 - the operator's own provider
        base + "/audit" + query, headers={"Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=30, context=client_context(settings)
        ) as response:
            body = orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        err.print(f"[red]the provider at {base} answered {error.code}[/red]", highlight=False)
        raise typer.Exit(1) from None
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError) as error:
        err.print(f"[red]cannot read the audit at {base}/audit[/red]: {error}", highlight=False)
        raise typer.Exit(1) from None
    head = body["head"]
    return body["entries"], ChainHead(head["seq"], head["hash"])


def _row(entry: dict[str, Any]) -> tuple[str, ...]:
    if "damaged_line" in entry:
        return ("?", "", "", "", "", "", "", f"damaged line: {entry['damaged_line'][:60]}")
    organisation = entry.get("organisation") or {}
    practitioner = entry.get("practitioner") or {}
    outcome = entry.get("outcome") or {}
    who = " / ".join(
        str(practitioner[key])
        for key in ("name", "sds_user_id", "sds_role_profile_id")
        if practitioner.get(key)
    )
    return (
        str(entry.get("seq")),
        str(entry.get("at", ""))[:23].replace("T", " "),
        entry.get("consumer_asid") or "",
        organisation.get("ods_code") or "",
        who,
        (entry.get("interaction") or "").rpartition(":")[2] or entry.get("path", ""),
        entry.get("patient") or "",
        f"{outcome.get('status')} {outcome.get('code') or ''}".strip(),
    )


def _report_json(report: ChainReport) -> dict[str, Any]:
    broken = report.broken
    return {
        "holds": broken is None,
        "entries": report.entries,
        "head": {"seq": report.head.seq, "hash": report.head.hash},
        "broken": None
        if broken is None
        else {"line": broken.line, "seq": broken.seq, "reason": broken.reason},
    }
