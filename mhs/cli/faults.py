"""``mhs faults``: set, list and clear faults on the Spine proxy simulator, over its admin API."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.table import Table

from mhs.cli.common import JsonOpt, err, settings_from, stdout
from mhs.spine.faults import FaultKind

app = typer.Typer(
    help="Faults on the Spine proxy simulator (its /_admin/faults API): per sender ASID, "
    "receiver ASID and/or interaction. Clearing them restores normal behaviour at once.",
    no_args_is_help=True,
)

ProxyOpt = Annotated[
    str | None,
    typer.Option("--proxy", help="the Spine proxy's URL (MHS_SPINE_PROXY_URL)", show_default=False),
]
DISTRIBUTIONS = {
    "uniform": ("low_ms", "high_ms"),
    "normal": ("mean_ms", "stddev_ms"),
    "exponential": ("mean_ms",),
}


def _proxy_url(proxy: str | None) -> str:
    if proxy:
        return proxy.rstrip("/")
    return settings_from().proxy_url


def _admin(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One admin API call; exits 1 saying why when the proxy cannot be reached."""
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the operator's own proxy URL
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw = error.read()
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        err.print(f"[red]cannot reach the Spine proxy at {url}[/red]: {error}")
        raise typer.Exit(1) from None
    try:
        return status, orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return status, raw.decode(errors="replace")


def parse_delay(spec: str) -> Any:
    """``250`` (fixed ms), ``uniform:50,200``, ``normal:200,30`` or ``exponential:100``."""
    name, _, numbers = spec.partition(":")
    try:
        if not numbers:
            return float(name)
        values = [float(v) for v in numbers.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{spec!r}: numbers of milliseconds expected") from None
    fields = DISTRIBUTIONS.get(name)
    if fields is None:
        raise typer.BadParameter(
            f"{spec!r}: distribution must be one of {', '.join(DISTRIBUTIONS)} (or a number)"
        )
    if len(values) != len(fields):
        raise typer.BadParameter(f"{spec!r}: {name} takes {', '.join(fields)}")
    return {"distribution": name, **dict(zip(fields, values, strict=True))}


def _print_problems(body: Any) -> None:
    if isinstance(body, dict):
        err.print(f"[red]{body.get('error', 'refused')}[/red]")
        for problem in body.get("problems", []):
            err.print(f"  {problem['field']}: {problem['problem']}")
    else:
        err.print(f"[red]{body}[/red]")


StatusOpt = Annotated[
    int | None, typer.Option(help="http-status, drop-ack: the HTTP status answered")
]
CodeOpt = Annotated[
    str | None,
    typer.Option(help="soap-fault: error code (200, 206, 208...); message-error: description"),
]
DelayOpt = Annotated[
    str | None,
    typer.Option(
        help="latency before the effect: 250 (ms), uniform:50,200, normal:200,30, exponential:100"
    ),
]


@app.command("set")
def set_fault(
    kind: Annotated[FaultKind, typer.Argument(show_default=False)],
    from_asid: Annotated[str | None, typer.Option("--from", help="sender ASID")] = None,
    to_asid: Annotated[str | None, typer.Option("--to", help="receiver ASID")] = None,
    interaction: Annotated[str | None, typer.Option(help="interaction id")] = None,
    rate: Annotated[
        float | None, typer.Option(help="share of messages (the same ones on every attempt)")
    ] = None,
    attempts: Annotated[int | None, typer.Option(help="only the first N attempts")] = None,
    status: StatusOpt = None,
    code: CodeOpt = None,
    delay: DelayOpt = None,
    hold_ms: Annotated[
        float | None, typer.Option(help="timeout, drop-ack --then timeout: hold this long")
    ] = None,
    then: Annotated[
        Literal["error", "timeout"] | None,
        typer.Option(help="drop-ack: answer --status, or hold unanswered"),
    ] = None,
    copies: Annotated[int | None, typer.Option(help="duplicate: forwards in all")] = None,
    rule_id: Annotated[str | None, typer.Option("--id", help="name the rule")] = None,
    proxy: ProxyOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Add a fault rule. Only the options given are sent; the proxy checks them."""
    if kind == "http-status" and status is None:
        err.print("[red]http-status needs --status[/red]: the HTTP status to answer (400-599)")
        raise typer.Exit(2)
    rule: dict[str, Any] = {"kind": kind}
    options = {
        "id": rule_id,
        "from_asid": from_asid,
        "to_asid": to_asid,
        "interaction_id": interaction,
        "rate": rate,
        "attempts": attempts,
        "status": status,
        "code": code,
        "delay": parse_delay(delay) if delay is not None else None,
        "hold_ms": hold_ms,
        "then": then,
        "copies": copies,
    }
    rule.update({k: v for k, v in options.items() if v is not None})
    code_, body = _admin("POST", _proxy_url(proxy) + "/_admin/faults", rule)
    if code_ != 201:
        _print_problems(body)
        raise typer.Exit(1)
    if json_output:
        typer.echo(orjson.dumps(body).decode())
    else:
        typer.echo(f"{body['id']}  {describe(body)}")


@app.command("list")
def list_faults(proxy: ProxyOpt = None, json_output: JsonOpt = False) -> None:
    """List the active fault rules, in the order they apply."""
    code_, body = _admin("GET", _proxy_url(proxy) + "/_admin/faults")
    if code_ != 200:
        _print_problems(body)
        raise typer.Exit(1)
    if json_output:
        typer.echo(orjson.dumps(body).decode())
        return
    if not body:
        typer.echo("no faults: the proxy behaves normally")
        return
    table = Table(title="Faults on the Spine proxy")
    for column in ("id", "kind", "applies to", "effect"):
        table.add_column(column)
    for rule in body:
        table.add_row(rule["id"], rule["kind"], _selection(rule), describe(rule, effect_only=True))
    stdout().print(table)


@app.command("clear")
def clear_faults(
    rule_id: Annotated[
        str | None, typer.Argument(help="the rule to remove; all of them if not given")
    ] = None,
    proxy: ProxyOpt = None,
) -> None:
    """Remove one rule, or all: normal behaviour returns at once, also for held requests."""
    url = _proxy_url(proxy) + "/_admin/faults" + (f"/{rule_id}" if rule_id else "")
    code_, body = _admin("DELETE", url)
    if code_ != 204:
        _print_problems(body)
        raise typer.Exit(1)
    typer.echo(f"removed {rule_id}" if rule_id else "cleared: the proxy behaves normally")


def _selection(rule: dict[str, Any]) -> str:
    parts = [
        f"{label} {rule[key]}"
        for key, label in (
            ("from_asid", "from"),
            ("to_asid", "to"),
            ("interaction_id", "interaction"),
        )
        if rule.get(key)
    ] or ["all traffic"]
    if rule.get("rate", 1.0) < 1.0:
        parts.append(f"{rule['rate']:.0%} of messages")
    if rule.get("attempts"):
        parts.append(f"first {rule['attempts']} attempt(s)")
    return ", ".join(parts)


def _delay_text(delay: dict[str, Any] | None) -> str:
    if not delay:
        return ""
    values = ", ".join(f"{k}={v:g}" for k, v in delay.items() if k != "distribution")
    return f"{delay['distribution']} delay ({values})"


def describe(rule: dict[str, Any], *, effect_only: bool = False) -> str:
    """One line saying what a rule (as the admin API lists it) does."""
    kind = rule["kind"]
    effect = {
        "latency": "",
        "http-status": f"answers HTTP {rule.get('status')}",
        "soap-fault": f"answers SOAP fault {rule.get('code') or '206'}",
        "message-error": f"answers MessageError {rule.get('code') or ''}".rstrip(),
        "timeout": "holds the request unanswered",
        "drop-ack": "forwards, then drops the acknowledgement"
        + (" and holds" if rule.get("then") == "timeout" else f" (HTTP {rule.get('status')})"),
        "duplicate": f"forwards {rule.get('copies')} copies",
    }[kind]
    text = ", then ".join(p for p in (_delay_text(rule.get("delay")), effect) if p)
    return text if effect_only else f"{kind}: {text}; {_selection(rule)}"
