"""What the ``mhs`` subcommands share: settings from flags, the directory, running a
coroutine, the shared options, progress bars and the error console."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import orjson
import typer
import uvloop
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mhs.broker import BrokerUnavailable
from mhs.broker.base import START_TIMEOUT_S as BROKER_START_TIMEOUT_S
from mhs.directory import Directory, TopologyError, generate_topology, load_topology
from mhs.provider.audit_file import AuditFileError
from mhs.runner import PortUnavailable, ServeFileError
from mhs.settings import Settings, redact_url
from mhs.state import StateError
from mhs.state.base import START_TIMEOUT_S as STATE_START_TIMEOUT_S
from mhs.tasks import stop_task

T = TypeVar("T")
# Exit codes beside 0: 1 the command ran and found a failure, 2 bad input or configuration.
UNAVAILABLE = 3  # a service or port the command needs is not there
ANNOUNCE_AFTER_S = 2.0
# Messages are lines, never wrapped mid-word or mid-URL, on a terminal or not.
err = Console(stderr=True, soft_wrap=True)
# Wide enough for any row: piped output is data, never truncated or wrapped.
PIPED_WIDTH = 100_000


def stdout() -> Console:
    """Standard output: the terminal's width, or as wide as the data when piped."""
    return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on standard output, for scripts."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def finish_run(
    summary: dict[str, Any],
    ok: bool,
    *,
    json_output: bool,
    show: Callable[[dict[str, Any]], None],
) -> NoReturn:
    """End a command that ran traffic: ``ok`` stamped on ``summary``, which is printed as
    JSON or by ``show``; exit 0 if ``ok``, else 1."""
    summary["ok"] = ok
    if json_output:
        print_json(summary)
    else:
        show(summary)
    raise typer.Exit(0 if ok else 1)


BrokerOpt = Annotated[
    str | None,
    typer.Option("--broker", help="amqp://user:pass@host:5672/ (MHS_BROKER_URL); unset: embedded"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
TopologyOpt = Annotated[
    Path | None,
    typer.Option("--topology", help="topology file, YAML or JSON (MHS_TOPOLOGY); unset: packaged"),
]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end on uvloop."""
    return uvloop.run(coro)


# The settings the commands also take as flags; every other setting is an MHS_* variable only.
FLAGS = {"broker_url": "--broker", "topology": "--topology"}
# MHS_* variables that are not settings: the healthcheck's role, status's credential, and
# the test suite's own.
NOT_SETTINGS = frozenset(
    {
        "MHS_ROLE",
        "MHS_CREDENTIAL",
        "MHS_REQUIRE_BROKER",
        "MHS_REQUIRE_REDIS",
        "MHS_SAMPLES_DIR",
        "MHS_TEST_BROKER_URL",
        "MHS_TEST_REDIS_URL",
        "MHS_TEST_SWEEP",
    }
)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A line for each MHS_* variable that is no setting, naming the nearest one."""
    known = {f"MHS_{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS
    lines = []
    for name in sorted(k for k in environ if k.upper().startswith("MHS_")):
        if name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1)
        hint = f"did you mean {close[0]}?" if close else "`mhs config --show` lists them"
        lines.append(f"{name} is not a setting and is ignored: {hint}")
    return lines


def settings_from(**flags: Any) -> Settings:
    """The settings: MHS_* environment, overridden by the flags given (None: not given).
    A bad value ends the command with one line per problem and exit code 2; an MHS_*
    variable that is no setting gets a warning line."""
    for line in unknown_variables(os.environ):
        err.print(f"[yellow]warning[/yellow]: {line}", highlight=False)
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            name = ".".join(str(p) for p in item["loc"])
            where = f"MHS_{name.upper()}" + (f" / {FLAGS[name]}" if name in FLAGS else "")
            err.print(f"[red]configuration error[/red]: {where}: {item['msg']}", highlight=False)
        raise typer.Exit(2) from None


def directory_for(settings: Settings, instances: int | None = None) -> Directory:
    """The topology file's directory, or a generated one of ``instances`` hosted instances.
    A bad file ends the command with the loader's message and exit code 2."""
    if instances is not None:
        if settings.topology is not None:
            err.print("[red]--instances and --topology cannot be used together[/red]")
            raise typer.Exit(2)
        return Directory(
            generate_topology(hosted=instances, remote=max(2, instances // 4)),
            source=f"<generated: {instances} hosted instances>",
            addresses=settings.local_addresses,
        )
    try:
        return load_topology(settings.topology, settings.local_addresses)
    except TopologyError as error:
        err.print(f"[red]topology error[/red]\n{error}")
        raise typer.Exit(2) from None


def progress_bar(*, transient: bool, disable: bool = False) -> Progress:
    """A progress bar on stderr: each task's description, bar, count and time."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=disable,
        transient=transient,
    )


@contextlib.asynccontextmanager
async def announced_start(settings: Settings) -> AsyncIterator[Callable[[], None]]:
    """While roles start: if that takes more than a moment (RabbitMQ or Redis not answering
    yet), say once what the command waits for. Yields the call that says the roles started."""
    started = asyncio.Event()
    needs = [
        f"{name} at {redact_url(url)} (up to {within:g} s)"
        for name, url, within in (
            ("RabbitMQ", settings.broker_url, BROKER_START_TIMEOUT_S),
            ("Redis", settings.state_url, STATE_START_TIMEOUT_S),
        )
        if url is not None
    ]

    async def announce() -> None:
        await asyncio.sleep(ANNOUNCE_AFTER_S)
        if not started.is_set():
            what = " and ".join(needs) or "the roles"
            err.print(f"waiting for {what}...", markup=False, highlight=False)

    task = asyncio.create_task(announce())
    try:
        yield started.set
    finally:
        await stop_task(task, within_s=1.0)


def run_roles(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``, which starts roles; a service or port it needs that is not there ends
    the command with one line naming it and what to do, and exit code 3."""
    try:
        return run(coro)
    except (BrokerUnavailable, StateError, PortUnavailable, ServeFileError) as error:
        err.print(f"[red]cannot start[/red]: {error}", highlight=False)
        raise typer.Exit(UNAVAILABLE) from None
    except AuditFileError as error:
        # A folder that cannot be written is a setting to change: configuration, exit 2.
        err.print(f"[red]cannot start[/red]: {error}", highlight=False)
        raise typer.Exit(2) from None
