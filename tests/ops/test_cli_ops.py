"""The operator and tester commands, run as people run them: real processes against a real
`mhs serve` on RabbitMQ."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from mhs.broker import Broker
from mhs.cli.logs import summarise
from mhs.ebxml import MessageHeader, build_request
from mhs.ids import is_uuid, new_id
from mhs.observe.events import Event
from mhs.observe.logs import configure_logging, get_logger
from mhs.runner import ROLES
from mhs.simulate.plan import HL7_TEMPLATE
from tests.ops.conftest import Served, free_port

pytestmark = pytest.mark.rabbitmq

SENDER, RECIPIENT = "918000000001", "918000000002"
GP2GP = "RCMR_IN010000UK05"
PDS_QUERY, SYNC_SENDER = "QUPA_IN040000UK32", "918000000003"


async def drain(broker: Broker, queue: str, expected: int) -> list[str]:
    """Message ids of the ``expected`` messages on ``queue`` (acked), in arrival order."""
    await broker.declare_queue(queue)
    found: list[str] = []
    deadline = time.monotonic() + 60
    while len(found) < expected:
        assert time.monotonic() < deadline, f"only {len(found)} of {expected} on {queue}"
        delivery = await broker.get(queue)
        if delivery is None:
            await asyncio.sleep(0.05)
            continue
        await delivery.ack()
        found.append(str(delivery.message_id))
    return found


def hl7(sender: str = SENDER, recipient: str = RECIPIENT) -> str:
    return HL7_TEMPLATE.format(
        interaction=GP2GP, message_id=new_id(), to_asid=recipient, from_asid=sender
    )


def ebxml_message(message_id: str) -> tuple[bytes, str]:
    header = MessageHeader(
        from_party_id="YES-0000806",
        to_party_id="A80002-0000002",
        cpa_id="S918000000002",
        conversation_id=new_id(),
        service="urn:nhs:names:services:gp2gp",
        action=GP2GP,
        message_id=message_id,
        timestamp="2026-01-01T00:00:00Z",
        duplicate_elimination=True,
        ack_requested=True,
    )
    return build_request(header, hl7())


async def test_faults_from_the_command_line_cause_retries_and_clearing_ends_them(
    served: Served, queues: Broker
) -> None:
    result = served.mhs(
        "faults",
        "set",
        "soap-fault",
        "--code",
        "206",
        "--from",
        SENDER,
        "--attempts",
        "2",
        "--id",
        "cli-soap",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cli-soap  soap-fault: answers SOAP fault 206")
    listed = json.loads(served.mhs("faults", "list", "--json").stdout)
    assert [(r["id"], r["kind"], r["from_asid"], r["attempts"]) for r in listed] == [
        ("cli-soap", "soap-fault", SENDER, 2)
    ]
    retries_before = served.metric("WORKER", "mhs_delivery_retries_total", interaction_id=GP2GP)
    delivered_before = served.metric("WORKER", "mhs_delivered_total", interaction_id=GP2GP)
    sent = served.mhs(
        "inject",
        "--from",
        SENDER,
        "--to",
        "A80002",
        "--interaction",
        GP2GP,
        "--count",
        "3",
        "--json",
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["accepted"] == 3
    served.until_metric("WORKER", "mhs_delivered_total", delivered_before + 3, interaction_id=GP2GP)
    assert served.metric("WORKER", "mhs_delivery_retries_total", interaction_id=GP2GP) == (
        retries_before + 6
    )
    assert (
        served.metric(
            "SPINE_PROXY",
            "mhs_proxy_faults_injected_total",
            kind="soap-fault",
            interaction_id=GP2GP,
        )
        >= 6
    )
    assert served.metric("SPINE_PROXY", "mhs_proxy_fault_rules") == 1

    cleared = served.mhs("faults", "clear")
    assert (cleared.returncode, cleared.stdout.strip()) == (
        0,
        "cleared: the proxy behaves normally",
    )
    assert served.mhs("faults", "list").stdout.strip() == "no faults: the proxy behaves normally"
    assert served.metric("SPINE_PROXY", "mhs_proxy_fault_rules") == 0
    again = served.mhs(
        "inject", "--from", SENDER, "--to", "A80002", "--interaction", GP2GP, "--count", "2"
    )
    assert again.returncode == 0, again.stderr
    # A small run says each message's id, for the next step (mhs status ID).
    ids = [line.split()[4] for line in again.stderr.splitlines()]
    assert len(ids) == 2
    assert all(is_uuid(message_id) for message_id in ids)
    served.until_metric("WORKER", "mhs_delivered_total", delivered_before + 5, interaction_id=GP2GP)
    assert served.metric("WORKER", "mhs_delivery_retries_total", interaction_id=GP2GP) == (
        retries_before + 6
    )
    await drain(queues, served.settings.inbound_queue(RECIPIENT), 5)


def test_bad_fault_commands_say_what_is_wrong(served: Served) -> None:
    refused = served.mhs("faults", "set", "http-status", "--status", "200")
    assert refused.returncode == 1
    assert "status: Input should be greater than or equal to 400" in refused.stderr
    stray = served.mhs("faults", "set", "latency", "--delay", "5", "--copies", "3")
    assert stray.returncode == 1
    assert "copies does not apply to kind latency" in stray.stderr
    assert served.mhs("faults", "set", "latency", "--delay", "gamma:3").returncode == 2
    no_status = served.mhs("faults", "set", "http-status")
    assert no_status.returncode == 2
    assert "http-status needs --status" in no_status.stderr
    assert served.mhs("faults", "list", "--json").stdout.strip() == "[]"  # nothing was set
    assert "no active fault with id nope" in served.mhs("faults", "clear", "nope").stderr
    unreachable = served.mhs("faults", "list", "--proxy", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1
    assert "cannot reach the Spine proxy" in unreachable.stderr
    assert served.mhs("faults", "list", "--json").stdout.strip() == "[]"


async def test_inject_files_and_folders(served: Served, queues: Broker, tmp_path: Path) -> None:
    folder = tmp_path / "messages"
    folder.mkdir()
    (folder / "1-addressed-by-hl7.json").write_bytes(orjson.dumps({"payload": hl7()}))
    raw_id = new_id()
    body, content_type = ebxml_message(raw_id)
    (folder / "2-raw.msg").write_bytes(body)
    (folder / "3-with-headers.msg").write_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + ebxml_message(new_id())[0]
    )
    (folder / ".hidden").write_text("not a message")
    result = served.mhs("inject", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["sent"], summary["accepted"], summary["refused"]) == (3, 3, 0)
    assert summary["latency_ms"]["count"] == 3
    # Not a terminal: one plain line per message, in the order the answers came back.
    lines = sorted(result.stderr.splitlines(), key=lambda line: line.split()[2])
    assert [line.split()[:3] for line in lines] == [
        ["accepted", "202", "1-addressed-by-hl7.json"],
        ["accepted", "200", "2-raw.msg"],
        ["accepted", "200", "3-with-headers.msg"],
    ]
    assert raw_id in lines[1]
    arrived = await drain(queues, served.settings.inbound_queue(RECIPIENT), 3)
    assert raw_id in arrived


async def test_inject_reports_refusals_with_their_reasons(
    served: Served, queues: Broker, tmp_path: Path
) -> None:
    bad = tmp_path / "extra-field.json"
    bad.write_bytes(orjson.dumps({"payload": hl7(), "extra": 1}))
    stranger = tmp_path / "no-agreement.json"
    stranger.write_bytes(orjson.dumps({"payload": hl7(recipient="918000000009")}))
    result = served.mhs("inject", str(bad), str(stranger), "--json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert (summary["sent"], summary["accepted"], summary["refused"]) == (2, 1, 1)
    [reason] = summary["refused_reasons"]
    assert reason == "400: Invalid request. Validation errors: {'extra': ['Unknown field.']}"
    # Accepted, then refused by Spine: the sender finds a MessageError on its own queue.
    await drain(queues, served.settings.inbound_queue(SENDER), 1)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--to", "ZZ999", "{folder}"], "'ZZ999' is not an ASID or ODS code"),
        (["{folder}/nothing-here"], "no such file or folder"),
        (["--count", "2", "{folder}"], "--count and --duration are for generated messages"),
        (["--count", "2", "--duration", "1"], "give --count or --duration, not both"),
        (["--from", "B80001"], "B80001 is not hosted here"),
        (["--interaction", "NOPE_IN000000UK01"], "unknown interaction NOPE_IN000000UK01"),
    ],
)
def test_inject_refuses_bad_input_before_sending_anything(
    served: Served, tmp_path: Path, args: list[str], problem: str
) -> None:
    (tmp_path / "a.json").write_bytes(orjson.dumps({"payload": hl7()}))
    (tmp_path / "b.txt").write_text("neither JSON nor MIME\n")
    accepted = served.metric(
        "OUTBOUND", "mhs_messages_accepted_total", interaction_id=GP2GP, from_asid=SENDER
    )
    result = served.mhs("inject", *(a.format(folder=tmp_path) for a in args))
    assert result.returncode == 2
    assert problem in result.stderr
    assert (
        served.metric(
            "OUTBOUND", "mhs_messages_accepted_total", interaction_id=GP2GP, from_asid=SENDER
        )
        == accepted
    )


def test_a_folder_with_an_unreadable_file_sends_nothing(served: Served, tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(orjson.dumps({"payload": hl7()}))
    (tmp_path / "b.txt").write_text("neither JSON nor MIME\n")
    result = served.mhs("inject", str(tmp_path))
    assert result.returncode == 2
    assert "b.txt: not JSON and not a multipart message" in result.stderr
    assert result.stdout == ""


async def test_generated_load_at_a_rate_for_a_duration(served: Served, queues: Broker) -> None:
    result = served.mhs(
        "inject",
        "--from",
        "A80003",
        "--to",
        "A80004",
        "--duration",
        "2.5",
        "--rate",
        "20",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["sent"] == summary["accepted"]
    assert 1 <= summary["sent"] <= 55  # the rate limits it: never more than 20 a second
    # A run with no count is not listed message by message: off a terminal, a count each
    # second (sending goes on past the first second, so there is at least one).
    assert result.stderr.splitlines(), "no progress lines"
    assert all(re.fullmatch(r"sent \d+.*", line) for line in result.stderr.splitlines()), (
        result.stderr
    )
    await drain(queues, served.settings.inbound_queue("918000000004"), summary["sent"])


async def test_inject_with_no_count_sends_one_message_and_names_it(
    served: Served, queues: Broker
) -> None:
    # A pair of its own: the roles are shared by the module's tests, which count per pair.
    result = served.mhs("inject", "--from", "A80007", "--to", "A80008")
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line.split()[:2] == ["accepted", "202"]
    message_id = re.search(r"[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}", line, flags=re.I)
    assert message_id, line
    [arrived] = await drain(queues, served.settings.inbound_queue("918000000008"), 1)
    assert message_id[0].upper() in arrived.upper()


def test_config_show_redacts_secrets_and_says_where_values_came_from(served: Served) -> None:
    result = served.mhs(
        "config",
        "--show",
        "--json",
        "--topology",
        "mhs/directory/default-topology.yaml",
        MHS_BROKER_URL="amqp://mhs:hunter2@rabbit:5672/prod",
        MHS_STATE_URL="redis://:sesame@redis:6379/0",
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert "sesame" not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["settings"]["broker_url"] == "amqp://mhs:***@rabbit:5672/prod"
    assert shown["settings"]["state_url"] == "redis://:***@redis:6379/0"
    assert shown["sources"]["broker_url"] == "env"
    assert shown["sources"]["topology"] == "flag"
    assert shown["sources"]["queue_type"] == "default"
    table = served.mhs("config", "--show", MHS_BROKER_URL="amqp://mhs:hunter2@rabbit:5672/")
    assert "hunter2" not in table.stdout
    assert "MHS_BROKER_URL" in table.stdout
    bad = served.mhs("config", MHS_DELIVERY_TIMEOUT_S="-1")
    assert bad.returncode == 2
    assert "MHS_DELIVERY_TIMEOUT_S" in bad.stderr


def test_the_served_roles_log_no_secrets(served: Served) -> None:
    logged = served.log.read_text()
    started = [json.loads(line) for line in logged.splitlines() if '"role.started"' in line]
    assert {line["role"] for line in started} == set(ROLES)
    assert {line["settings"]["broker_url"] for line in started} == {
        "amqp://guest:***@127.0.0.1:5672/"
    }
    assert "guest:guest@" not in logged


def test_logs_summary_of_the_served_roles(served: Served) -> None:
    sent = served.mhs(
        "inject", "--from", "A80005", "--to", "A80006", "--interaction", GP2GP, "--count", "4"
    )
    assert sent.returncode == 0, sent.stderr
    deadline = time.monotonic() + 60
    while True:
        result = served.mhs("logs", "summary", str(served.log), "--json")
        assert result.returncode == 0, result.stderr
        summary: dict[str, Any] = json.loads(result.stdout)
        instance = summary["instances"].get("918000000005", {})
        if (
            instance.get("outcomes", {}).get("delivered") == 4
            and summary["instances"].get("918000000006", {}).get("counts", {}).get("received") == 4
        ):
            break
        assert time.monotonic() < deadline, instance
        time.sleep(0.2)
    assert instance["counts"]["accepted"] == 4
    assert instance["end_to_end_ms"]["count"] == 4
    assert instance["end_to_end_ms"]["p50"] > 0
    assert summary["interactions"][GP2GP]["counts"]["accepted"] >= 4
    assert summary["unreadable_lines"] == 0
    piped = served.mhs("logs", "summary", "-", stdin=served.log.read_text())
    assert piped.returncode == 0
    assert "Per interaction" in piped.stdout
    assert GP2GP in piped.stdout
    assert served.mhs("logs", "summary", "/no/such/file").returncode == 2


def _lifecycle_lines(level: str) -> list[str]:
    """The lines the roles write at ``level`` for a message delivered on its second attempt,
    one rejected and a sync one replied to, logged as the roles log them (DEBUG or INFO)."""
    stream = io.StringIO()
    saved = structlog.get_config()
    try:
        configure_logging(level, "json", stream=stream)
        outbound, worker, inbound = (get_logger(r) for r in ("outbound", "worker", "inbound"))
        ids = {"interaction_id": GP2GP, "from_asid": SENDER, "to_asid": RECIPIENT}
        delivered, rejected = {"message_id": new_id(), **ids}, {"message_id": new_id(), **ids}
        for fields in (delivered, rejected):
            outbound.debug(Event.MESSAGE_ACCEPTED, **fields)
            outbound.info(Event.MESSAGE_QUEUED, outcome="queued", duration_ms=1.0, **fields)
        sync = {**ids, "message_id": new_id(), "interaction_id": PDS_QUERY}
        sync["from_asid"] = SYNC_SENDER
        outbound.debug(Event.MESSAGE_ACCEPTED, **sync)
        outbound.info(Event.MESSAGE_REPLIED, status=200, outcome="replied", duration_ms=4.0, **sync)
        worker.info(
            Event.DELIVERY_ATTEMPT, attempt=1, outcome="transient", duration_ms=5.0, **delivered
        )
        worker.info(Event.DELIVERY_RETRY_SCHEDULED, attempt=1, outcome="retry", **delivered)
        worker.debug(
            Event.DELIVERY_ATTEMPT, attempt=2, outcome="accepted", duration_ms=7.0, **delivered
        )
        worker.info(
            Event.DELIVERY_DELIVERED, attempt=2, outcome="delivered", duration_ms=7.0, **delivered
        )
        worker.info(
            Event.DELIVERY_ATTEMPT, attempt=1, outcome="permanent", duration_ms=3.0, **rejected
        )
        worker.info(Event.DELIVERY_REJECTED, outcome="rejected", **rejected)
        worker.info(Event.DELIVERY_DEAD_LETTERED, outcome="rejected", **rejected)
        inbound.debug(Event.INBOUND_RECEIVED, **delivered)
        inbound.info(Event.INBOUND_DELIVERED, outcome="delivered", duration_ms=2.0, **delivered)
        inbound.debug(Event.INBOUND_ACKNOWLEDGED, outcome="acknowledged", **delivered)
    finally:
        structlog.configure(**saved)
    return stream.getvalue().splitlines()


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_logs_summary_counts_the_same_at_debug_and_info(level: str) -> None:
    lines = _lifecycle_lines(level)
    assert len(lines) == {"DEBUG": 16, "INFO": 10}[level]
    summary = summarise(lines)
    assert (summary["messages"], summary["outcomes"]) == (
        3,
        {"delivered": 1, "rejected": 1, "replied": 1},
    )
    for group in (summary["interactions"][PDS_QUERY], summary["instances"][SYNC_SENDER]):
        assert (group["counts"], group["outcomes"]) == ({"accepted": 1}, {"replied": 1})
    for group in (summary["interactions"][GP2GP], summary["instances"][SENDER]):
        counts = {k: v for k, v in group["counts"].items() if k != "received"}
        assert counts == {
            "accepted": 2,
            "attempts": 3,  # a transient and a permanent failure, and the accepted one
            "retries": 1,
            "delivered": 1,
            "rejected": 1,
            "dead_lettered": 1,
            **({"arrived": 1} if group is summary["interactions"][GP2GP] else {}),
        }
        assert group["outcomes"] == {"delivered": 1, "rejected": 1}
        assert group["attempt_ms"]["count"] == 3
        assert (group["attempt_ms"]["p50"], group["attempt_ms"]["max"]) == (5.0, 7.0)
        assert group["end_to_end_ms"]["count"] == 1
    assert summary["instances"][RECIPIENT]["counts"] == {"received": 1}
