"""``mhs dlq``: what is on the dead-letter queue and why, and putting it back on its way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from mhs.broker import BrokerError
from mhs.broker.factory import broker_for
from mhs.cli.common import JsonOpt, err, print_json, settings_from, stdout
from mhs.reliability.dead_letters import DeadLetter, DeadLetters

app = typer.Typer(
    help="The dead-letter queue: list, show and replay messages that could not be delivered.",
    no_args_is_help=True,
)
T = TypeVar("T")

BrokerOpt = Annotated[
    str | None, typer.Option("--broker", help="amqp://user:pass@host:5672/ (MHS_BROKER_URL)")
]


def _with_dead_letters(broker_url: str | None, work: Callable[[DeadLetters], Awaitable[T]]) -> T:
    settings = settings_from(broker_url=broker_url)
    if settings.broker_url is None:
        err.print(
            "[red]no broker[/red]: the embedded broker lives inside the process that runs "
            "the roles; give --broker or MHS_BROKER_URL"
        )
        raise typer.Exit(2)

    async def run() -> T:
        broker = broker_for(settings, "dlq")
        await broker.start()
        try:
            dead_letters = DeadLetters(broker, settings)
            await dead_letters.prepare()
            return await work(dead_letters)
        finally:
            await broker.stop()

    try:
        return asyncio.run(run())
    except BrokerError as error:
        err.print(f"[red]broker error[/red]: {error}")
        raise typer.Exit(1) from None


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")


@app.command("list")
def list_cmd(
    broker: BrokerOpt = None,
    limit: Annotated[int, typer.Option(help="show at most this many", min=1)] = 100,
    json_output: JsonOpt = False,
) -> None:
    """The messages on the dead-letter queue, oldest first, with why they are there."""

    async def work(dead_letters: DeadLetters) -> tuple[int, list[DeadLetter]]:
        return await dead_letters.depth(), await dead_letters.browse(limit=limit)

    depth, entries = _with_dead_letters(broker, work)
    if json_output:
        print_json({"depth": depth, "messages": [e.summary() for e in entries]})
        return
    table = Table(title=f"Dead-letter queue: {depth} message{'s' if depth != 1 else ''}")
    table.add_column("message id", no_wrap=True, min_width=36)
    for column in ("outcome", "attempts", "dead-lettered", "interaction", "from -> to", "reason"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            e.message_id or "",
            e.outcome,
            "" if e.attempts is None else str(e.attempts),
            _when(e.dead_lettered_at),
            e.interaction_id or "",
            f"{e.from_asid or '?'} -> {e.to_asid or '?'}",
            e.reason[:80],
        )
    stdout().print(table)


@app.command("show")
def show_cmd(
    message_id: Annotated[str, typer.Argument(help="the message id (Message-Id)")],
    broker: BrokerOpt = None,
    body: Annotated[bool, typer.Option("--body", help="also print the body (has the payload)")] = (
        False
    ),
    json_output: JsonOpt = False,
) -> None:
    """One dead-lettered message: its reason, attempts, timestamps and headers."""

    async def work(dead_letters: DeadLetters) -> list[DeadLetter]:
        return await dead_letters.find(message_id)

    entries = _with_dead_letters(broker, work)
    if not entries:
        err.print(f"no message {message_id} on the dead-letter queue")
        raise typer.Exit(1)
    shown = []
    for e in entries:
        item: dict[str, Any] = {
            **e.summary(),
            "record": e.record_fields(),
            "headers": dict(e.headers),
        }
        if body:
            item["body"] = e.body.decode("utf-8", errors="replace")
        shown.append(item)
    if json_output:
        print_json(shown if len(shown) > 1 else shown[0])
        return
    out = stdout()
    for item in shown:
        for key, value in item.items():
            # Values are data (JSON bodies, reasons): printed as text, never as markup.
            if key in ("headers", "record"):
                out.print(Text(key, style="bold"))
                for name, text in value.items():
                    out.print(Text(f"  {name}: {text}"), highlight=False)
            else:
                out.print(Text.assemble((key, "bold"), f": {value}"), highlight=False)


@app.command("replay")
def replay_cmd(
    message_id: Annotated[
        str | None, typer.Argument(help="the message id to replay (or --all)")
    ] = None,
    all_messages: Annotated[bool, typer.Option("--all", help="replay every message")] = False,
    broker: BrokerOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Put dead-lettered messages back on the outbound queue, keeping their message ids.

    Each leaves the dead-letter queue only once the broker has confirmed it on the outbound
    queue; its attempts start again from none and its persist duration from now.
    """
    if (message_id is None) == (not all_messages):
        err.print("[red]give a message id or --all (not both)[/red]")
        raise typer.Exit(2)

    async def work(dead_letters: DeadLetters) -> int:
        if message_id is None:
            return await dead_letters.replay_all()
        return await dead_letters.replay(message_id)

    count = _with_dead_letters(broker, work)
    if json_output:
        print_json({"replayed": count})
    else:
        stdout().print(f"replayed {count} message{'s' if count != 1 else ''}")
    if message_id is not None and count == 0:
        err.print(f"no message {message_id} on the dead-letter queue")
        raise typer.Exit(1)
