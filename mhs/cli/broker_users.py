"""``mhs broker-users``: per-instance RabbitMQ users that can read their own queue only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, cast

import orjson
import typer
from rich.table import Table

from mhs.broker.users import BrokerUsersError, InstanceUser, Via, choose_applier, plan_users
from mhs.cli.common import directory_for, err, settings_from, stdout

app = typer.Typer(
    help="Per-instance RabbitMQ users: each may read its own mhs.inbound.<ASID> queue only.",
)


@app.callback(invoke_without_command=True)
def broker_users(
    apply: Annotated[bool, typer.Option("--apply", help="create or update the users")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="delete the users")] = False,
    via: Annotated[
        str, typer.Option(help="auto (management API if it answers), management or rabbitmqctl")
    ] = "auto",
    management_url: Annotated[
        str | None, typer.Option(help="management API base URL (default: broker host, 15672)")
    ] = None,
    broker: Annotated[
        str | None, typer.Option("--broker", help="amqp://admin:pass@host:5672/vhost")
    ] = None,
    topology: Annotated[Path | None, typer.Option("--topology", help="topology file")] = None,
    asid: Annotated[
        list[str] | None, typer.Option("--asid", help="only this instance (repeatable)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Show (default), --apply or --remove one broker user per hosted instance.

    A user is named <queue prefix>instance.<ASID>; its password is the instance's
    credential; it may read <queue prefix>inbound.<ASID> and nothing else. Passwords are
    never printed.
    """
    if apply and remove:
        err.print("[red]--apply and --remove cannot be used together[/red]")
        raise typer.Exit(2)
    if via not in ("auto", "management", "rabbitmqctl"):
        err.print(f"[red]--via {via!r}[/red]: choose auto, management or rabbitmqctl")
        raise typer.Exit(2)
    settings = settings_from(broker_url=broker, topology=topology)
    if settings.inbound_shared_queue:
        err.print(
            f"[red]MHS_INBOUND_SHARED_QUEUE is set[/red]: every instance's messages share "
            f"{settings.inbound_shared_queue!r}, so no user can be given only its own; "
            "unset it for a queue per instance"
        )
        raise typer.Exit(2)
    users = plan_users(directory_for(settings), settings, asid or ())
    done = "planned"
    if apply or remove:
        try:
            applier = choose_applier(settings, cast(Via, via), management_url)
            for user in users:
                if apply:
                    applier.put(user)
                else:
                    applier.delete(user)
        except BrokerUsersError as error:
            err.print(f"[red]broker users[/red]: {error}")
            raise typer.Exit(1) from None
        done = f"{'applied' if apply else 'removed'} via {applier.name}"
    _show(done, users, json_output=json_output)


def _show(done: str, users: list[InstanceUser], *, json_output: bool) -> None:
    rows = [
        {
            "user": u.username,
            "asid": u.asid,
            "vhost": u.vhost,
            "configure": u.configure,
            "write": u.write,
            "read": u.read,
        }
        for u in users
    ]
    if json_output:
        sys.stdout.write(orjson.dumps({"result": done, "users": rows}).decode() + "\n")
        return
    table = Table(title=f"Broker users ({done}); password: the instance's credential")
    for column in ("user", "vhost", "configure", "write", "read"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["user"], row["vhost"], row["configure"], row["write"], row["read"])
    stdout().print(table)
