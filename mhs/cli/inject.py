"""``mhs inject``: messages for integration testers, from files or generated between instances.

A JSON file is an NHS MHS adaptor request body (``{"payload", "attachments"}``), sent to the
outbound MHS as a hosted instance; any other file is a raw ebXML multipart message, sent to
the inbound MHS as Spine would. Generated load goes between chosen instances at a chosen rate.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import aiohttp
import orjson
import typer
from aiolimiter import AsyncLimiter
from lxml import etree
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mhs.cli.common import directory_for, err, run, settings_from
from mhs.directory import Directory, Party
from mhs.ebxml import (
    EBXML_CONTENT_ID,
    EbxmlError,
    classify_reply,
    extract_device_asids,
    peek_header,
)
from mhs.ebxml.safexml import parse_xml
from mhs.ids import is_asid, new_id
from mhs.settings import Settings
from mhs.simulate.plan import Planned
from mhs.simulate.tally import Tally

Target = Literal["outbound", "inbound"]


class InjectError(Exception):
    """A message that cannot even be sent (a file we cannot read or address)."""


@dataclass(frozen=True, slots=True)
class Shot:
    """One request to send, and what to call it in the output."""

    label: str
    target: Target
    body: bytes
    headers: dict[str, str]
    message_id: str | None = None


class Addressing:
    """Finds instances by ASID or ODS code, and the headers a hosted instance sends."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def party(self, key: str, *, hosted: bool = False) -> Party:
        party = self.directory.by_asid(key) if is_asid(key) else None
        if party is None:
            # An ODS code: its hosted system first, as a sender must be one.
            found = sorted(self.directory.by_ods(key), key=lambda p: not p.hosted)
            party = found[0] if found else None
        if party is None:
            raise InjectError(f"{key!r} is not an ASID or ODS code in {self.directory.source}")
        if hosted and not party.hosted:
            raise InjectError(f"{key} is not hosted here: only hosted instances can send")
        return party

    def outbound_headers(
        self, sender: Party, recipient: Party, interaction_id: str, message_id: str
    ) -> dict[str, str]:
        credential = self.directory.credential_for(sender.asid)
        if credential is None:
            raise InjectError(f"{sender.asid} has no credential in {self.directory.source}")
        return {
            "Authorization": f"Bearer {credential}",
            "Interaction-Id": interaction_id,
            "wait-for-response": "false",
            "Message-Id": message_id,
            "ods-code": recipient.ods_code,
            "to-asid": recipient.asid,
            "Content-Type": "application/json",
        }


def _root_name(payload: str) -> str | None:
    try:
        return etree.QName(parse_xml(payload.encode(), "the HL7 payload")).localname
    except (EbxmlError, ValueError):
        return None


def json_shot(
    path: Path,
    raw: bytes,
    addressing: Addressing,
    sender: str | None,
    recipient: str | None,
    interaction: str | None,
) -> Shot:
    """An NHS adaptor request body, addressed by the flags or else by its HL7 wrapper."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InjectError(f"{path}: not JSON: {error}") from None
    payload = body.get("payload") if isinstance(body, dict) else None
    snd = rcv = None
    if isinstance(payload, str):
        try:
            snd, rcv = extract_device_asids(payload)
        except EbxmlError:
            snd = rcv = None
    sender = sender or snd
    recipient = recipient or rcv
    if interaction is None and isinstance(payload, str):
        root = _root_name(payload)
        interaction = root if root and addressing.directory.interaction(root) else None
    missing = [
        what
        for what, value in (("--from", sender), ("--to", recipient), ("--interaction", interaction))
        if not value
    ]
    if missing:
        raise InjectError(
            f"{path}: give {', '.join(missing)} (the payload's HL7 wrapper does not say)"
        )
    assert sender
    assert recipient
    assert interaction
    message_id = new_id()
    headers = addressing.outbound_headers(
        addressing.party(sender, hosted=True), addressing.party(recipient), interaction, message_id
    )
    return Shot(path.name, "outbound", raw, headers, message_id)


def multipart_shot(path: Path, raw: bytes) -> Shot:
    """A raw ebXML multipart message: its HTTP header lines, a blank line and its parts; or
    just its parts, the boundary read from the first line."""
    head, body = b"", raw.lstrip()
    if not body.startswith(b"--"):
        ends = [(i, n) for n in (b"\r\n\r\n", b"\n\n") if (i := raw.find(n)) >= 0]
        if not ends:
            raise InjectError(f"{path}: not JSON and not a multipart message")
        end, separator = min(ends)
        head, body = raw[:end], raw[end + len(separator) :]
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip()] = value.strip()
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if content_type is None:
        first = body.split(b"\n", 1)[0].strip()
        if not first.startswith(b"--") or len(first) < 3:
            raise InjectError(
                f"{path}: not JSON and not a multipart message (no Content-Type header line "
                "and no --boundary first line)"
            )
        content_type = (
            f'multipart/related; boundary="{first[2:].decode("latin-1")}"; type="text/xml"; '
            f'start="<{EBXML_CONTENT_ID}>"'
        )
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    try:
        message_id: str | None = peek_header(content_type, body).message_id
    except EbxmlError:
        message_id = None  # sent all the same: what the inbound MHS makes of it is the test
    return Shot(path.name, "inbound", body, {**headers, "Content-Type": content_type}, message_id)


def file_shots(
    paths: Sequence[Path],
    addressing: Addressing,
    sender: str | None,
    recipient: str | None,
    interaction: str | None,
) -> list[Shot]:
    """Every message the files and folders hold, all checked before any is sent."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in sorted(path.iterdir()) if p.is_file() and p.name[0] != ".")
        elif path.is_file():
            files.append(path)
        else:
            raise InjectError(f"{path}: no such file or folder")
    if not files:
        raise InjectError("no files to inject")
    shots = []
    for path in files:
        raw = path.read_bytes()
        if raw.lstrip()[:1] in (b"{", b"["):
            shots.append(json_shot(path, raw, addressing, sender, recipient, interaction))
        else:
            shots.append(multipart_shot(path, raw))
    return shots


def generated_shots(
    addressing: Addressing,
    senders: Sequence[str],
    recipients: Sequence[str],
    interactions: Sequence[str],
    *,
    seed: int,
) -> Iterator[Shot]:
    """An endless stream of messages between the chosen instances. Without recipients, each
    sender writes to hosted instances it shares data with, for interactions both are
    accredited for."""
    directory = addressing.directory
    chosen = [addressing.party(s, hosted=True) for s in senders] or [
        p for p in directory.parties if p.hosted
    ]
    targets = [addressing.party(r) for r in recipients]
    kinds = list(interactions) or sorted(directory.interactions)
    for interaction in kinds:
        if directory.interaction(interaction) is None:
            raise InjectError(f"unknown interaction {interaction} in {directory.source}")
    pairs = [
        (s, r, i)
        for s in chosen
        for r in (targets or [p for p in directory.parties if p.hosted])
        for i in kinds
        if r.asid != s.asid
        and (
            targets
            or (
                directory.has_agreement(s.ods_code, r.ods_code)
                and s.accredited_for(i)
                and r.accredited_for(i)
            )
        )
    ]
    if not pairs:
        raise InjectError("no sender, recipient and interaction fit together: see --help")
    return _stream(addressing, pairs, seed)


def _stream(
    addressing: Addressing, pairs: list[tuple[Party, Party, str]], seed: int
) -> Iterator[Shot]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible traffic mix, not a secret
    for n in itertools.count(1):
        sender, recipient, interaction = rng.choice(pairs)
        message_id = new_id()
        plan = Planned(message_id, sender, recipient, interaction, "deliver")
        headers = addressing.outbound_headers(sender, recipient, interaction, message_id)
        body = orjson.dumps({"payload": plan.payload()})
        yield Shot(f"#{n} {sender.asid}->{recipient.asid}", "outbound", body, headers, message_id)


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
    if target == "outbound":
        return None if status == 202 else f"{status} {body.decode(errors='replace')[:300]}"
    if status >= 300:
        return f"{status} {body.decode(errors='replace')[:300]}"
    reply = classify_reply(content_type, body)
    if reply.kind in ("message-error", "soap-fault"):
        errors = "; ".join(f"{e.code}:{e.description}" for e in reply.errors) or "no detail"
        return f"{status} {reply.kind} {errors}"
    return None


@dataclass
class Plan:
    shots: Iterator[Shot]
    total: int | None
    duration_s: float | None
    rate: float | None
    concurrency: int


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
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    return {
        "outbound": (outbound or f"http://{host}:{settings.outbound_port}").rstrip("/") + "/",
        "inbound": inbound or f"http://{host}:{settings.inbound_port}/reliablemessaging",
    }


def inject(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="message files or folders: .json request bodies go to the outbound MHS, raw "
            "ebXML multipart messages to the inbound MHS; none: generate messages",
            show_default=False,
        ),
    ] = None,
    senders: Annotated[
        list[str] | None,
        typer.Option("--from", help="sending hosted instance (ASID or ODS code); repeatable"),
    ] = None,
    recipients: Annotated[
        list[str] | None, typer.Option("--to", help="recipient (ASID or ODS code); repeatable")
    ] = None,
    interactions: Annotated[
        list[str] | None, typer.Option("--interaction", help="interaction id; repeatable")
    ] = None,
    count: Annotated[int | None, typer.Option(help="messages to generate", min=1)] = None,
    duration: Annotated[
        float | None, typer.Option(help="generate for this many seconds", min=0.1)
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="messages per second (default: as fast as they go)")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="requests in flight", min=1)] = 16,
    seed: Annotated[int, typer.Option(help="generated traffic mix seed")] = 1,
    outbound: Annotated[
        str | None, typer.Option(help="outbound MHS URL (default: this host's MHS_OUTBOUND_PORT)")
    ] = None,
    inbound: Annotated[
        str | None,
        typer.Option(help="inbound MHS URL for ebXML (default: this host's MHS_INBOUND_PORT)"),
    ] = None,
    topology: Annotated[
        Path | None, typer.Option("--topology", help="topology file (MHS_TOPOLOGY)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Inject messages and print what became of them: accepted, refused (with the reasons),
    latency. Exits 0 when every message was accepted, 1 otherwise, 2 on bad input."""
    if rate is not None and rate <= 0:
        raise typer.BadParameter("--rate must be above 0")
    settings = settings_from(topology=topology)
    addressing = Addressing(directory_for(settings))
    try:
        plan = _plan(
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
        err.print(f"[red]cannot inject[/red]: {error}", soft_wrap=True)
        raise typer.Exit(2) from None
    tally = _run_with_progress(plan, _urls(settings, outbound, inbound), run, bool(paths))
    result = tally.sending_summary()
    if json_output:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_summary(result)
    raise typer.Exit(0 if result["accepted"] == result["sent"] and result["sent"] else 1)


def _plan(
    addressing: Addressing,
    paths: list[Path],
    senders: list[str],
    recipients: list[str],
    interactions: list[str],
    *,
    count: int | None,
    duration: float | None,
    rate: float | None,
    concurrency: int,
    seed: int,
) -> Plan:
    if not paths:
        shots = generated_shots(addressing, senders, recipients, interactions, seed=seed)
        # Neither --count nor --duration: one message, to see that the path works.
        total = count if count is not None else None if duration is not None else 1
        return Plan(shots, total, duration, rate, concurrency)
    if count is not None or duration is not None:
        raise InjectError("--count and --duration are for generated messages, not files")
    if max(len(senders), len(recipients), len(interactions)) > 1:
        raise InjectError("files take at most one --from, --to and --interaction")
    listed = file_shots(
        paths,
        addressing,
        senders[0] if senders else None,
        recipients[0] if recipients else None,
        interactions[0] if interactions else None,
    )
    return Plan(iter(listed), len(listed), None, rate, concurrency)


def _run_with_progress(
    plan: Plan, urls: dict[Target, str], runner: Any, per_message: bool
) -> Tally:
    if sys.stderr.isatty():
        with Progress(
            TextColumn("injecting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("sent", total=plan.total)
            tally: Tally = runner(send_all(plan, urls, lambda _: bar.advance(task)))
            return tally
    # Not a terminal: plain lines, one per message for files, one a second for load.
    last = time.monotonic()
    counted = 0

    def report(line: str) -> None:
        nonlocal last, counted
        counted += 1
        if per_message:
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        elif time.monotonic() - last >= 1.0:
            last = time.monotonic()
            err.print(f"sent {counted}", markup=False, highlight=False)

    result: Tally = runner(send_all(plan, urls, report))
    return result


def _print_summary(result: dict[str, Any]) -> None:
    out = Console(width=None if sys.stdout.isatty() else 160)
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
