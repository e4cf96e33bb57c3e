"""Metrics derived from the lifecycle events: per role, whatever the log level."""

from __future__ import annotations

import io
from typing import Any

import pytest
import structlog
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mhs.ids import new_id
from mhs.observe import metrics
from mhs.observe.events import Event
from mhs.observe.logs import configure_logging, get_logger
from mhs.observe.metrics import RoleMetrics, reason_kind
from tests.ops.conftest import LiveLogs, eventually
from tests.roles.conftest import Harness

SENDER, RECIPIENT = "918000000001", "918000000002"
GP2GP = "RCMR_IN010000UK05"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def names(found: Samples) -> set[str]:
    return {name for name, _ in found}


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        (
            f"FOT_CHECK_FAILED_MESSAGESENDER_{SENDER}_MESSAGERECEIVER_{RECIPIENT}",
            "FOT_CHECK_FAILED_MESSAGESENDER",
        ),
        (f"ASID_CHECK_FAILED_MESSAGESENDER_{SENDER}", "ASID_CHECK_FAILED_MESSAGESENDER"),
        ("ERROR_COMMUNICATING_TO_ENDPOINT_URL_http://x:1/y", "ERROR_COMMUNICATING_TO_ENDPOINT_URL"),
        ("BAD_REQUEST", "BAD_REQUEST"),
        ("SOAP fault 300:Bad thing (HTTP 500)", "SOAP fault 300"),
        (
            "MessageError ValueNotRecognized:501319:Unknown eb:CPAId",
            "MessageError ValueNotRecognized",
        ),
        ("HTTP 404", "HTTP 404"),
        ("retries exhausted: HTTP 503", "retries exhausted"),
        ("", "none"),
        (None, "none"),
        ("  ?!", "other"),
    ],
)
def test_reason_kinds_are_bounded_tokens(reason: str | None, kind: str) -> None:
    assert reason_kind(reason) == kind


def test_each_event_moves_its_metrics() -> None:
    m = RoleMetrics("worker", instances=4)
    base = {"interaction_id": GP2GP, "from_asid": SENDER, "to_asid": RECIPIENT}
    for event in (
        {"event": Event.DELIVERY_ATTEMPT, "outcome": "transient", "duration_ms": 3.0},
        {"event": Event.DELIVERY_RETRY_SCHEDULED},
        {"event": Event.DELIVERY_ATTEMPT, "outcome": "accepted", "duration_ms": 200.0},
        {"event": Event.DELIVERY_DELIVERED},
        {"event": Event.DELIVERY_REJECTED, "reason": "MessageError ValueNotRecognized:x"},
        {"event": Event.DELIVERY_DEAD_LETTERED, "outcome": "rejected"},
        {"event": "not.an.event"},
    ):
        m.observe({**base, **event})
    found = samples(generate_latest(m.registry).decode())
    assert value(found, "mhs_events_total", event="delivery.attempt") == 2
    assert (
        value(found, "mhs_delivery_attempts_total", interaction_id=GP2GP, outcome="transient") == 1
    )
    assert (
        value(found, "mhs_delivery_attempts_total", interaction_id=GP2GP, outcome="accepted") == 1
    )
    assert value(found, "mhs_delivery_retries_total", interaction_id=GP2GP) == 1
    assert value(found, "mhs_delivered_total", interaction_id=GP2GP) == 1
    assert (
        value(
            found,
            "mhs_delivery_rejected_total",
            interaction_id=GP2GP,
            reason="MessageError ValueNotRecognized",
        )
        == 1
    )
    assert value(found, "mhs_dead_lettered_total", interaction_id=GP2GP, outcome="rejected") == 1
    seconds = "mhs_delivery_attempt_seconds"
    assert value(found, seconds + "_count", interaction_id=GP2GP) == 2
    assert value(found, seconds + "_sum", interaction_id=GP2GP) == pytest.approx(0.203)
    assert value(found, seconds + "_bucket", interaction_id=GP2GP, le="0.0025") == 0
    assert value(found, seconds + "_bucket", interaction_id=GP2GP, le="0.005") == 1
    assert value(found, seconds + "_bucket", interaction_id=GP2GP, le="0.25") == 2
    assert value(found, seconds + "_bucket", interaction_id=GP2GP, le="+Inf") == 2
    assert not any(
        name == "mhs_events_total" and ("event", "not.an.event") in labels for name, labels in found
    )


def test_asid_labels_are_bounded_by_the_topology_or_off() -> None:
    m = RoleMetrics("inbound", instances=2)  # room for (2 + 1) * 8 label sets
    for n in range(40):
        m.observe(
            {"event": Event.INBOUND_DELIVERED, "interaction_id": GP2GP, "to_asid": f"9{n:011d}"}
        )
    found = samples(generate_latest(m.registry).decode())
    delivered = {
        labels: v for (name, labels), v in found.items() if name == "mhs_inbound_delivered_total"
    }
    assert len(delivered) == 25  # 24 real label sets, the rest under "other"
    assert delivered[frozenset({("interaction_id", "other"), ("to_asid", "other")})] == 16
    assert sum(delivered.values()) == 40

    off = RoleMetrics("inbound", instance_labels=False)
    off.observe({"event": Event.INBOUND_DELIVERED, "interaction_id": GP2GP, "to_asid": RECIPIENT})
    found = samples(generate_latest(off.registry).decode())
    assert value(found, "mhs_inbound_delivered_total", interaction_id=GP2GP, to_asid="") == 1


def test_metrics_count_events_the_log_level_drops() -> None:
    stream = io.StringIO()
    saved = structlog.get_config()
    m = metrics.acquire("outbound")
    try:
        configure_logging("ERROR", "json", stream=stream)
        log = get_logger("outbound")
        # message.accepted is logged at DEBUG by the outbound MHS: counted all the same.
        log.debug(Event.MESSAGE_ACCEPTED, interaction_id=GP2GP, from_asid=SENDER)
        log.info(Event.MESSAGE_ACCEPTED, interaction_id=GP2GP, from_asid=SENDER)
        log.warning(Event.MESSAGE_REFUSED, status=503, reason="broker down")
        log.error(Event.MESSAGE_REFUSED, status=503, reason="broker down")
    finally:
        metrics.release("outbound")
        structlog.configure(**saved)
    assert stream.getvalue().count("\n") == 1  # only the error was written
    found = samples(generate_latest(m.registry).decode())
    assert value(found, "mhs_messages_accepted_total", interaction_id=GP2GP, from_asid=SENDER) == 2
    assert value(found, "mhs_events_total", event="message.accepted") == 2
    assert value(found, "mhs_messages_refused_total", status="503") == 2
    assert metrics.record_metrics(
        None, "info", {"event": Event.MESSAGE_ACCEPTED, "role": "outbound"}
    )
    assert metrics._roles.get("outbound") is None  # released with its last user


async def scrape(h: Harness, role: str) -> Samples:
    async with h.http.get(h.url(role) + "/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        return samples(await response.text())


@pytest.mark.rabbitmq
async def test_each_role_reports_its_own_figures(harness_factory: Any, live_logs: LiveLogs) -> None:
    h: Harness = await harness_factory()
    async with h.http.post(
        h.url("spine-proxy") + "/_admin/faults",
        json={"kind": "http-status", "status": 503, "attempts": 1, "from_asid": SENDER},
    ) as response:
        assert response.status == 201
    sent = [new_id() for _ in range(3)]
    for message_id in sent:
        assert (await h.send(SENDER, ods_code="A80002", message_id=message_id)).status == 202
    refused = await h.send(SENDER, ods_code="ZZ999")
    assert refused.status == 400
    arrived = {(await h.take(h.settings.inbound_queue(RECIPIENT))).message_id for _ in sent}
    assert arrived == set(sent)
    await eventually(lambda: len(live_logs.events(Event.DELIVERY_DELIVERED)) == 3)

    outbound = await scrape(h, "outbound")
    assert (
        value(outbound, "mhs_messages_accepted_total", interaction_id=GP2GP, from_asid=SENDER) == 3
    )
    assert value(outbound, "mhs_messages_refused_total", status="400") == 1
    assert value(outbound, "mhs_queue_publish_seconds_count", interaction_id=GP2GP) == 3
    assert value(outbound, "mhs_queue_depth", queue=h.settings.outbound_queue) == 0
    assert value(outbound, "mhs_ready") == 1
    assert value(outbound, "mhs_broker_connected") == 1
    assert "mhs_delivery_attempts_total" not in names(outbound)  # the worker's, not here

    worker = await scrape(h, "worker")
    assert (
        value(worker, "mhs_delivery_attempts_total", interaction_id=GP2GP, outcome="transient") == 3
    )
    assert (
        value(worker, "mhs_delivery_attempts_total", interaction_id=GP2GP, outcome="accepted") == 3
    )
    assert value(worker, "mhs_delivery_retries_total", interaction_id=GP2GP) == 3
    assert value(worker, "mhs_delivered_total", interaction_id=GP2GP) == 3
    assert value(worker, "mhs_queue_depth", queue=h.settings.dead_letter_queue) == 0
    assert "mhs_deliveries_in_flight" in names(worker)
    assert value(worker, "mhs_deliveries_in_flight") == 0  # all three are done
    assert "mhs_messages_accepted_total" not in names(worker)

    proxy = await scrape(h, "spine-proxy")
    assert (
        value(proxy, "mhs_proxy_faults_injected_total", kind="http-status", interaction_id=GP2GP)
        == 3
    )
    assert value(proxy, "mhs_proxy_forwarded_total", interaction_id=GP2GP, status="200") == 3
    assert value(proxy, "mhs_proxy_fault_rules") == 1
    assert "mhs_broker_connected" not in names(proxy)  # the proxy has no broker

    inbound = await scrape(h, "inbound")
    assert (
        value(inbound, "mhs_inbound_delivered_total", interaction_id=GP2GP, to_asid=RECIPIENT) == 3
    )
    assert value(inbound, "mhs_inbound_received_total", interaction_id=GP2GP) == 3
    assert value(inbound, "mhs_events_total", event="inbound.acknowledged") == 3

    async with h.http.delete(h.url("spine-proxy") + "/_admin/faults") as response:
        assert response.status == 204
    assert value(await scrape(h, "spine-proxy"), "mhs_proxy_fault_rules") == 0


def test_in_flight_deliveries_are_read_from_the_worker_when_scraped() -> None:
    m = RoleMetrics("worker")
    assert "mhs_deliveries_in_flight" not in names(samples(generate_latest(m.registry).decode()))
    busy = [3]

    def first() -> int:
        return busy[0]

    def second() -> int:
        return 2

    m.track_in_flight(first)
    m.track_in_flight(second)
    assert value(samples(generate_latest(m.registry).decode()), "mhs_deliveries_in_flight") == 5
    busy[0] = 0
    m.untrack_in_flight(second)
    assert value(samples(generate_latest(m.registry).decode()), "mhs_deliveries_in_flight") == 0
    m.untrack_in_flight(first)
    assert "mhs_deliveries_in_flight" not in names(samples(generate_latest(m.registry).decode()))
