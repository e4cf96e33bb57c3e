"""What the roles really write is what docs/log-schema.md promises: events, fields, types."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
import structlog

from mhs.ebxml import MessageHeader, build_request
from mhs.ids import new_id
from mhs.observe import metrics
from mhs.observe.events import Event
from mhs.observe.logs import configure_logging, get_logger
from tests.ops.conftest import LiveLogs, eventually
from tests.roles.conftest import Harness
from tests.test_log_schema import SCHEMA, documented_fields

SENDER, RECIPIENT = "918000000001", "918000000002"
TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def documented_events() -> set[str]:
    return {e.value for e in Event if f"| `{e.value}` |" in SCHEMA}


def problems_with(line: dict[str, Any], fields: dict[str, str], events: set[str]) -> list[str]:
    found = []
    if line.get("event") not in events:
        found.append(f"undocumented event {line.get('event')!r}")
    for name, value in line.items():
        kind = fields.get(name)
        if kind is None:
            found.append(f"{line.get('event')}: undocumented field {name!r}")
        elif value is not None and (
            not isinstance(value, TYPES[kind]) or (kind == "integer" and isinstance(value, bool))
        ):
            found.append(f"{line.get('event')}: {name}={value!r} is not {kind}")
    return found


@pytest.mark.rabbitmq
async def test_every_line_the_roles_write_follows_the_schema(
    harness_factory: Any, live_logs: LiveLogs
) -> None:
    # At DEBUG, so that the events logged at DEBUG (message.accepted, ...) are checked too.
    configure_logging("DEBUG", "json", stream=live_logs.stream)
    h: Harness = await harness_factory()
    # Traffic through most paths: retries, faults of each kind, refusals, duplicates, a NACK.
    await h.add_fault(kind="latency", delay=5, from_asid=SENDER)
    await h.add_fault(kind="soap-fault", code="206", attempts=1, from_asid=SENDER)
    await h.add_fault(kind="message-error", from_asid="918000000003")
    await h.add_fault(kind="duplicate", from_asid="918000000004")
    await h.add_fault(kind="drop-ack", attempts=1, from_asid="918000000005")
    sent = {
        "918000000001": "A80002",  # latency, then a retried SOAP fault
        "918000000003": "A80002",  # MessageError: rejected, sender told
        "918000000004": "A80002",  # forwarded twice, a duplicate dropped
        "918000000005": "A80002",  # the acknowledgement dropped, retried, a duplicate dropped
        "918000000006": "A80009",  # no data sharing agreement: refused by the proxy
    }
    for sender, ods in sent.items():
        assert (await h.send(sender, ods_code=ods)).status == 202
    assert (await h.send(SENDER, ods_code="ZZ999")).status == 400
    header = MessageHeader(
        from_party_id="YES-0000806",
        to_party_id="NOTUS-0000001",
        cpa_id="S1001A1630",
        conversation_id=new_id(),
        service="urn:nhs:names:services:gp2gp",
        action="RCMR_IN010000UK05",
        message_id=new_id(),
        timestamp="2026-01-01T00:00:00Z",
        ack_requested=True,
    )
    body, content_type = build_request(header, "<x/>")
    async with h.http.post(
        h.url("inbound") + "/", data=body, headers={"Content-Type": content_type}
    ) as response:
        assert response.status == 200  # a NACK
    counts = (Event.DELIVERY_DELIVERED, Event.DELIVERY_DEAD_LETTERED, Event.INBOUND_DUPLICATE)
    await eventually(
        lambda: [len(live_logs.events(e)) for e in counts] == [3, 2, 2],
        what=f"{counts} counted 3, 2 and 2",
    )
    async with h.http.delete(h.url("spine-proxy") + "/_admin/faults") as response:
        assert response.status == 204
    lines = live_logs.lines()
    seen = {line["event"] for line in lines}
    assert {
        "role.started",
        "broker.connected",
        "message.refused",
        "message.accepted",
        "message.queued",
        "delivery.attempt",
        "delivery.retry_scheduled",
        "delivery.delivered_to_proxy",
        "delivery.rejected",
        "delivery.dead_lettered",
        "delivery.sender_notified",
        "proxy.refused",
        "proxy.fault_injected",
        "proxy.forwarded",
        "proxy.faults_changed",
        "inbound.received",
        "inbound.nacked",
        "inbound.duplicate_dropped",
        "inbound.delivered_to_instance",
        "inbound.acknowledged",
    } <= seen
    fields, events = documented_fields(), documented_events()
    problems = sorted({p for line in lines for p in problems_with(line, fields, events)})
    assert not problems, problems
    started = next(line for line in lines if line["event"] == "role.started")
    assert started["settings"]["broker_url"] == "amqp://guest:***@127.0.0.1:5672/"


@pytest.mark.rabbitmq
async def test_at_info_a_relayed_message_is_one_line_per_role(
    harness_factory: Any, live_logs: LiveLogs
) -> None:
    h: Harness = await harness_factory()
    message_id = new_id()
    assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202

    def lines() -> list[tuple[str, str, str]]:
        return sorted(
            (line["role"], line["event"], line["level"])
            for line in live_logs.lines()
            if line.get("message_id") == message_id
        )

    await eventually(lambda: len(lines()) >= 4, what="a line from each role")
    assert lines() == [
        ("inbound", "inbound.delivered_to_instance", "info"),
        ("outbound", "message.queued", "info"),
        ("spine-proxy", "proxy.forwarded", "info"),
        ("worker", "delivery.delivered_to_proxy", "info"),
    ]


def test_the_checker_finds_what_is_wrong() -> None:
    fields, events = documented_fields(), documented_events()
    line = {"event": "message.queued", "status": "202", "attempt": True, "secret_field": 1}
    assert sorted(problems_with(line, fields, events)) == [
        "message.queued: attempt=True is not integer",
        "message.queued: status='202' is not integer",
        "message.queued: undocumented field 'secret_field'",
    ]
    assert problems_with({"event": "no.such"}, fields, events) == ["undocumented event 'no.such'"]


def test_ecs_output_is_elastic_common_schema() -> None:
    stream = io.StringIO()
    saved = structlog.get_config()
    metrics.acquire("outbound")
    try:
        configure_logging("INFO", "ecs", stream=stream)
        log = get_logger("outbound")
        log.info(Event.MESSAGE_QUEUED, message_id="M1", duration_ms=1.5, outcome="queued")
        try:
            int("boom")
        except ValueError:
            log.exception(Event.BROKER_HANDLER_FAILED, queue="q")
    finally:
        metrics.release("outbound")
        structlog.configure(**saved)
    queued, failed = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert queued["message"] == "message.queued"
    assert queued["event"] == {"action": "message.queued"}
    assert queued["log.level"] == "info"
    assert queued["ecs.version"]
    assert queued["@timestamp"].endswith("Z")
    assert (queued["message_id"], queued["duration_ms"], queued["role"]) == ("M1", 1.5, "outbound")
    assert failed["log.level"] == "error"
    assert "ValueError: invalid literal" in failed["error"]["stack_trace"]
