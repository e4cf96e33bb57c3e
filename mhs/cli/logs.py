"""``mhs logs summary``: counts, outcomes and latency per instance and interaction, read from
the roles' JSON log lines (docs/log-schema.md; the ECS format too)."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from mhs.cli.common import print_json, stdout
from mhs.observe.events import Event
from mhs.observe.latency import latency

app = typer.Typer(help="Read the roles' JSON logs.", no_args_is_help=True)
err = Console(stderr=True)

FINAL = {
    Event.MESSAGE_REPLIED.value: "replied",  # a sync message, answered with Spine's reply
    Event.DELIVERY_DELIVERED.value: "delivered",
    Event.DELIVERY_DEAD_LETTERED.value: "",  # its outcome says which
}
# At the default INFO level message.accepted and accepted delivery.attempt lines are not
# written (DEBUG): a message is counted accepted from message.queued when no message.accepted
# line came before it, and an accepted attempt from delivery.delivered_to_proxy, which
# follows each one (see _Summary.add and _counted).
COUNTED = {
    Event.MESSAGE_ACCEPTED.value: "accepted",
    Event.DELIVERY_ATTEMPT.value: "attempts",
    Event.DELIVERY_RETRY_SCHEDULED.value: "retries",
    Event.DELIVERY_DELIVERED.value: "delivered",
    Event.DELIVERY_REJECTED.value: "rejected",
    Event.DELIVERY_DEAD_LETTERED.value: "dead_lettered",
    Event.PROXY_FAULT_INJECTED.value: "faults",
    Event.INBOUND_DELIVERED.value: "arrived",
    Event.INBOUND_DUPLICATE.value: "duplicates_dropped",
}


@dataclass
class _Group:
    counts: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    end_to_end: list[float] = field(default_factory=list)
    attempt_ms: list[float] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {
            "counts": dict(sorted(self.counts.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "end_to_end_ms": latency(self.end_to_end),
            "attempt_ms": latency(self.attempt_ms),
        }


@dataclass
class _Message:
    interaction_id: str | None = None
    from_asid: str | None = None
    accepted_at: datetime | None = None
    outcome: str = "pending"
    # A message.accepted line was read and its message.queued has not been: that line
    # counted the message, so its message.queued does not count it again.
    queued_pending: bool = False


def _time(line: dict[str, Any]) -> datetime | None:
    value = line.get("timestamp") or line.get("@timestamp")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _counted(name: str, line: dict[str, Any]) -> tuple[str, ...]:
    """What one line counts as. An accepted attempt is counted from the
    delivery.delivered_to_proxy line that follows it (written at INFO, with the same
    ``duration_ms``), not from its delivery.attempt line (written at DEBUG only)."""
    if name == Event.DELIVERY_DELIVERED:
        return ("delivered", "attempts")
    if name == Event.DELIVERY_ATTEMPT and line.get("outcome") == "accepted":
        return ()
    counted = COUNTED.get(name)
    return (counted,) if counted is not None else ()


# The line after message.accepted (DEBUG): a queued message's, a sync message's reply.
_AFTER_ACCEPTED = frozenset({Event.MESSAGE_QUEUED.value, Event.MESSAGE_REPLIED.value})


class _Summary:
    """Reads log lines one at a time and keeps what the summary needs."""

    def __init__(self) -> None:
        self.read = 0
        self.unreadable = 0
        self.events: Counter[str] = Counter()
        self.interactions: defaultdict[str, _Group] = defaultdict(_Group)
        self.instances: defaultdict[str, _Group] = defaultdict(_Group)
        self.messages: dict[str, _Message] = {}

    def add(self, raw: str | bytes) -> None:
        if not raw.strip():
            return
        self.read += 1
        line = self._parse(raw)
        if line is None:
            self.unreadable += 1
            return
        name = line["event"]
        self.events[name] += 1
        message_id = line.get("message_id")
        if not isinstance(message_id, str):
            self._count(name, line)
            return
        message = self.messages.get(message_id)
        if name in _AFTER_ACCEPTED and message is not None and message.queued_pending:
            message.queued_pending = False  # counted from its message.accepted line
        elif name == Event.MESSAGE_ACCEPTED or name in _AFTER_ACCEPTED:
            # A message.queued (or a sync message's message.replied) with no message.accepted
            # before it: a file written at INFO.
            message = self.messages[message_id] = _Message(
                line.get("interaction_id"),
                line.get("from_asid"),
                _time(line),
                queued_pending=name == Event.MESSAGE_ACCEPTED,
            )
            self._count(Event.MESSAGE_ACCEPTED.value, line)
        else:
            self._count(name, line)
        if message is not None:
            self._follow(message, name, line)

    @staticmethod
    def _parse(raw: str | bytes) -> dict[str, Any] | None:
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(line, dict):
            return None
        name = line.get("event")
        if isinstance(name, dict):  # ECS: the event name is event.action
            name = line["event"] = name.get("action")
        return line if isinstance(name, str) else None

    def _count(self, name: str, line: dict[str, Any]) -> None:
        for counted in _counted(name, line):
            self._count_as(counted, line)

    def _count_as(self, counted: str, line: dict[str, Any]) -> None:
        interaction = line.get("interaction_id")
        groups: list[_Group] = []
        if isinstance(interaction, str):
            groups.append(self.interactions[interaction])
        if counted == "arrived":
            asid, as_instance = line.get("to_asid"), "received"
        else:
            asid, as_instance = line.get("from_asid"), counted
        if isinstance(interaction, str):
            self.interactions[interaction].counts[counted] += 1
        if isinstance(asid, str):
            self.instances[asid].counts[as_instance] += 1
            if counted != "arrived":
                groups.append(self.instances[asid])
        duration = line.get("duration_ms")
        if counted == "attempts" and isinstance(duration, int | float):
            for group in groups:
                group.attempt_ms.append(duration)

    def _follow(self, message: _Message, name: str, line: dict[str, Any]) -> None:
        if name in FINAL:
            message.outcome = FINAL[name] or str(line.get("outcome") or "dead-lettered")
        if name != Event.INBOUND_DELIVERED or message.accepted_at is None:
            return
        arrived = _time(line)
        if arrived is None:
            return
        elapsed = (arrived - message.accepted_at).total_seconds() * 1000
        if message.interaction_id:
            self.interactions[message.interaction_id].end_to_end.append(elapsed)
        if message.from_asid:
            self.instances[message.from_asid].end_to_end.append(elapsed)

    def result(self) -> dict[str, Any]:
        outcomes: Counter[str] = Counter()
        for message in self.messages.values():
            outcomes[message.outcome] += 1
            if message.interaction_id:
                self.interactions[message.interaction_id].outcomes[message.outcome] += 1
            if message.from_asid:
                self.instances[message.from_asid].outcomes[message.outcome] += 1
        return {
            "lines": self.read,
            "unreadable_lines": self.unreadable,
            "messages": len(self.messages),
            "outcomes": dict(sorted(outcomes.items())),
            "events": dict(sorted(self.events.items())),
            "interactions": {k: v.report() for k, v in sorted(self.interactions.items())},
            "instances": {k: v.report() for k, v in sorted(self.instances.items())},
        }


def summarise(lines: Iterable[str | bytes]) -> dict[str, Any]:
    """The summary of a JSON log stream (our format or ECS)."""
    summary = _Summary()
    for line in lines:
        summary.add(line)
    return summary.result()


@app.command("summary")
def summary(
    source: Annotated[str, typer.Argument(help="a JSON log file, or - for standard input")],
    json_output: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Per-instance and per-interaction counts, outcomes and latency percentiles.

    Outcomes are per message accepted in the stream: delivered (Spine accepted it), rejected,
    dead-lettered, expired, or pending. End-to-end latency runs from message.accepted to
    inbound.delivered_to_instance, so it needs the outbound's and inbound's logs together.
    Logs written at INFO (the default) have no message.accepted lines (DEBUG): there, a
    message counts as accepted, and its latency starts, at message.queued.
    """
    if source == "-":
        result = summarise(sys.stdin.buffer)
    else:
        path = Path(source)
        if not path.is_file():
            err.print(f"[red]no such log file: {source}[/red]")
            raise typer.Exit(2)
        with path.open("rb") as lines:
            result = summarise(lines)
    if json_output:
        print_json(result)
        return
    _print(result)


def _print(result: dict[str, Any]) -> None:
    out = stdout()
    out.print(
        f"{result['lines']} lines ({result['unreadable_lines']} unreadable), "
        f"{result['messages']} messages accepted: "
        + (", ".join(f"{v} {k}" for k, v in result["outcomes"].items()) or "none")
    )
    for title, key, label in (
        ("Per interaction", "interactions", "interaction"),
        ("Per instance (sender ASID; received = as recipient)", "instances", "ASID"),
    ):
        table = Table(title=title)
        columns = (label, "accepted", "delivered", "rejected", "dead-lettered", "retries")
        for column in (*columns, "arrived", "e2e p50/p99 ms", "attempt p50/p99 ms"):
            table.add_column(column)
        for name, group in result[key].items():
            counts = group["counts"]
            e2e, attempt = group["end_to_end_ms"], group["attempt_ms"]
            table.add_row(
                name,
                str(counts.get("accepted", 0)),
                str(counts.get("delivered", 0)),
                str(counts.get("rejected", 0)),
                str(counts.get("dead_lettered", 0)),
                str(counts.get("retries", 0)),
                str(counts.get("arrived", counts.get("received", 0))),
                f"{e2e['p50']:g}/{e2e['p99']:g}" if e2e["count"] else "-",
                f"{attempt['p50']:g}/{attempt['p99']:g}" if attempt["count"] else "-",
            )
        out.print(table)
