"""``mhs inject``: messages for integration testers, from files or generated between instances.

A JSON file is an NHS MHS adaptor request body (``{"payload", "attachments"}``), sent to the
outbound MHS as a hosted instance; any other file is a raw ebXML multipart message, sent to
the inbound MHS as Spine would. Generated load goes between chosen instances at a chosen rate.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import typer
from aiolimiter import AsyncLimiter

from mhs.cli.common import directory_for, err, print_json, progress_bar, run, settings_from, stdout
from mhs.cli.shots import Addressing, InjectError, Plan, Shot, Target, plan_shots
from mhs.ebxml import (
    classify_reply,
)
from mhs.settings import Settings
from mhs.simulate.tally import Tally

PER_MESSAGE_MAX = 20


async def _send(
    http: aiohttp.ClientSession, urls: dict[Target, str], shot: Shot, tally: Tally
) -> str:
    """Send one message; count it; return a line saying how it went."""
    started = time.perf_counter()
    tally.sent += 1
    try:
        async with http.post(urls[shot.target], data=shot.body, headers=shot.headers) as reply:
            body = await reply.read()
            status, content_type = reply.status, reply.content_type
    except (aiohttp.ClientError, TimeoutError) as error:
        reason = f"{type(error).__name__}: {error}".rstrip(": ")
        tally.failed[reason] += 1
        return f"failed   {shot.label}: {reason}"
    elapsed = (time.perf_counter() - started) * 1000
    tally.latencies_ms.append(elapsed)
    refusal = _refusal(shot.target, status, content_type, body)
    if refusal is None:
        tally.accepted.add(shot.message_id or shot.label)
        return f"accepted {status} {shot.label} {shot.message_id or ''} ({elapsed:.1f} ms)"
    tally.refused[refusal] += 1
    return f"refused  {status} {shot.label}: {refusal}"


def _refusal(target: Target, status: int, content_type: str, body: bytes) -> str | None:
    if (target == "outbound" and status != 202) or status >= 300:
        # Our errors say "<status>: <reason>" already, as the NHS adaptor's do.
        text = body.decode(errors="replace")[:300]
        return text if text.startswith(f"{status}: ") else f"{status}: {text}"
    if target == "outbound":
        return None
    reply = classify_reply(content_type, body)
    if reply.kind in ("message-error", "soap-fault"):
        errors = "; ".join(f"{e.code}:{e.description}" for e in reply.errors) or "no detail"
        return f"{status} {reply.kind} {errors}"
    return None


async def send_all(plan: Plan, urls: dict[Target, str], report: Any) -> Tally:
    """Send ``plan``'s messages; ``report(line)`` is called after each."""
    tally = Tally()
    limiter = AsyncLimiter(1, 1 / plan.rate) if plan.rate else None
    deadline = None if plan.duration_s is None else time.monotonic() + plan.duration_s
    shots = plan.shots if plan.total is None else itertools.islice(plan.shots, plan.total)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def worker() -> None:
            for shot in shots:  # one shared iterator: each shot goes to one worker
                if limiter is not None:
                    await limiter.acquire()
                if deadline is not None and time.monotonic() >= deadline:
                    return
                report(await _send(http, urls, shot, tally))

        await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    return tally


def _urls(settings: Settings, outbound: str | None, inbound: str | None) -> dict[Target, str]:
    host = settings.reachable_host
    return {
        "outbound": (outbound or f"http://{host}:{settings.outbound_port}").rstrip("/") + "/",
        "inbound": inbound or f"http://{host}:{settings.inbound_port}/reliablemessaging",
    }


Paths = Annotated[
    list[Path] | None,
    typer.Argument(
        help="message files or folders: .json request bodies go to the outbound MHS, raw "
        "ebXML multipart messages to the inbound MHS; none: generate messages",
        show_default=False,
    ),
]
Senders = Annotated[
    list[str] | None,
    typer.Option("--from", help="sending hosted instance (ASID or ODS code); repeatable"),
]
Recipients = Annotated[
    list[str] | None, typer.Option("--to", help="recipient (ASID or ODS code); repeatable")
]
Interactions = Annotated[
    list[str] | None, typer.Option("--interaction", help="interaction id; repeatable")
]
Count = Annotated[int | None, typer.Option(help="messages to generate", min=1)]
Duration = Annotated[float | None, typer.Option(help="generate for this many seconds", min=0.1)]
Rate = Annotated[
    float | None, typer.Option(help="messages per second (default: as fast as they go)")
]
OutboundUrl = Annotated[
    str | None, typer.Option(help="outbound MHS URL (default: this host's MHS_OUTBOUND_PORT)")
]
InboundUrl = Annotated[
    str | None,
    typer.Option(help="inbound MHS URL for ebXML (default: this host's MHS_INBOUND_PORT)"),
]
Topology = Annotated[Path | None, typer.Option("--topology", help="topology file (MHS_TOPOLOGY)")]


def inject(
    paths: Paths = None,
    senders: Senders = None,
    recipients: Recipients = None,
    interactions: Interactions = None,
    count: Count = None,
    duration: Duration = None,
    rate: Rate = None,
    concurrency: Annotated[int, typer.Option(help="requests in flight", min=1)] = 16,
    seed: Annotated[int, typer.Option(help="generated traffic mix seed")] = 1,
    outbound: OutboundUrl = None,
    inbound: InboundUrl = None,
    topology: Topology = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Inject messages and print what became of them: accepted, refused (with the reasons),
    latency. Exits 0 when every message was accepted, 1 otherwise, 2 on bad input."""
    if rate is not None and rate <= 0:
        raise typer.BadParameter("--rate must be above 0")
    settings = settings_from(topology=topology)
    addressing = Addressing(directory_for(settings))
    try:
        plan = plan_shots(
            addressing,
            paths or [],
            senders or [],
            recipients or [],
            interactions or [],
            count=count,
            duration=duration,
            rate=rate,
            concurrency=concurrency,
            seed=seed,
        )
    except InjectError as error:
        err.print(f"[red]cannot inject[/red]: {error}")
        raise typer.Exit(2) from None
    # A line per message (with its id) for files and small runs; load gets a count a second.
    per_message = bool(paths) or (plan.total is not None and plan.total <= PER_MESSAGE_MAX)
    tally = _run_with_progress(plan, _urls(settings, outbound, inbound), per_message)
    result = tally.sending_summary()
    if json_output:
        print_json(result)
    else:
        _print_summary(result)
    raise typer.Exit(0 if result["accepted"] == result["sent"] and result["sent"] else 1)


def _run_with_progress(plan: Plan, urls: dict[Target, str], per_message: bool) -> Tally:
    if per_message:
        # Each message's line, with its id, for the next step (mhs status ID).
        return run(
            send_all(
                plan,
                urls,
                lambda line: err.print(line, markup=False, highlight=False),
            )
        )
    if sys.stderr.isatty():
        with progress_bar(transient=True) as bar:
            task = bar.add_task("injecting", total=plan.total)
            return run(send_all(plan, urls, lambda _: bar.advance(task)))
    # Load, not on a terminal: a count once a second.
    last = time.monotonic()
    counted = 0

    def report(_: str) -> None:
        nonlocal last, counted
        counted += 1
        if time.monotonic() - last >= 1.0:
            last = time.monotonic()
            err.print(f"sent {counted}", markup=False, highlight=False)

    return run(send_all(plan, urls, report))


def _print_summary(result: dict[str, Any]) -> None:
    out = stdout()
    lat = result["latency_ms"]
    out.print(
        f"sent {result['sent']}: {result['accepted']} accepted, {result['refused']} refused, "
        f"{result['failed']} failed in {result['elapsed_s']} s "
        f"({result['messages_per_s']} messages/s)",
        highlight=False,
    )
    out.print(
        f"latency ms: p50 {lat['p50']}, p90 {lat['p90']}, p99 {lat['p99']}, max {lat['max']}",
        highlight=False,
    )
    for title, key in (("refused", "refused_reasons"), ("failed", "failures")):
        if result[key]:
            out.print(f"{title}:")
            for reason, number in result[key].items():
                out.print(f"  {number:>6}  {reason}", markup=False, highlight=False)
