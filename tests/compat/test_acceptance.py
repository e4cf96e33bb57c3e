"""Spine acceptance: POST / answered once the delivery worker settled the message, as the
NHS adaptor answers once Spine has: 202 delivered, its 500 JSON when Spine refused the
message or it was given up, 202 ``mhs-outcome: pending`` when it is still being retried.
Real roles on the real RabbitMQ; Spine's refusals are the proxy's injected faults."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiohttp import web

from mhs.broker import OutgoingMessage
from mhs.ids import new_id
from mhs.messages.outcomes import OUTCOME_TYPE, DeliveryOutcome
from mhs.observe.events import Event
from mhs.reliability.headers import REPLY_TO
from mhs.roles.outbound import create_outbound_app
from mhs.roles.outbound.replies import REPLIES
from tests.roles.conftest import HL7, Harness

pytestmark = pytest.mark.rabbitmq

SENDER, RECIPIENT = "918000000001", "918000000002"  # A80001 -> A80002: they share data
SCR_QUERY = "QUPC_IN160101UK05"  # to Spine, which replies (sync-async)
SPINE_ERROR = "Error(s) received from Spine. Contact system administrator."
ROLES = ("inbound", "spine-proxy", "worker", "outbound")


async def post(
    h: Harness,
    *,
    acceptance: str | None = "spine",
    ods_code: str | None = "A80002",
    interaction: str = "RCMR_IN010000UK05",
    wait: bool = False,
    message_id: str | None = None,
    url: str | None = None,
) -> tuple[int, bytes, dict[str, str], str]:
    """POST / from SENDER: status, body, headers and the message id it was sent under."""
    message_id = message_id or new_id()
    headers = {
        "Authorization": f"Bearer {h.token(SENDER)}",
        "Interaction-Id": interaction,
        "wait-for-response": "true" if wait else "false",
        "Message-Id": message_id,
        "Content-Type": "application/json",
    }
    if acceptance is not None:
        headers["mhs-acceptance"] = acceptance
    if ods_code is not None:
        headers["ods-code"] = ods_code
    body = orjson.dumps({"payload": HL7.format(id=message_id)})
    url = url or h.url("outbound")
    async with h.http.post(url + "/", data=body, headers=headers) as response:
        return response.status, await response.read(), dict(response.headers), message_id


def reply_queue(h: Harness) -> str:
    outbound = next(r for r in h.cluster.running if r.role == "outbound")
    return outbound.runner.app[REPLIES].queue


async def nothing_stray(h: Harness, message_id: str) -> None:
    """The outcome was reported to the held request's replica and went nowhere else: not to
    the sender's queue, not left in the reply queue, not passed on as an unclaimed reply."""
    [reported] = await h.logged(Event.DELIVERY_OUTCOME_REPORTED, message_id)
    assert (reported["outcome"], reported["queue"]) == ("sent", reply_queue(h))
    await asyncio.sleep(0.3)  # time for a wrong turn to show
    assert await h.broker.queue_depth(reply_queue(h)) == 0
    assert await h.depth(h.settings.unclaimed_replies_queue) == 0
    assert not h.events_for(Event.MESSAGE_REPLY_FORWARDED, message_id)


def assert_adaptor_error(body: bytes, headers: dict[str, str], *, process_key: str) -> list[Any]:
    """The adaptor's 500 body (JSON labelled text/plain, as it sends it); its errors."""
    assert headers["Content-Type"].startswith("text/plain")
    error = orjson.loads(body)
    assert set(error) == {"error_message", "process_key", "errors"}
    assert error["process_key"] == process_key
    errors: list[Any] = error["errors"]
    assert errors
    return errors


async def test_spine_acceptance_by_header_answers_202_once_the_proxy_accepted(
    harness_factory: Any,
) -> None:
    h = await harness_factory(ROLES)
    status, body, headers, message_id = await post(h)
    assert (status, body) == (202, b"")
    assert headers["Message-Id"] == message_id
    assert headers["mhs-outcome"] == "delivered"
    # Answered after the worker's delivery, not after queueing.
    assert h.events_for(Event.DELIVERY_DELIVERED, message_id)
    assert (await h.take(h.settings.inbound_queue(RECIPIENT))).message_id == message_id
    [answered] = h.events_for(Event.MESSAGE_OUTCOME_ANSWERED, message_id)
    assert (answered["status"], answered["outcome"]) == (202, "delivered")
    await nothing_stray(h, message_id)
    assert await h.depth(h.settings.inbound_queue(SENDER)) == 0


async def test_spine_acceptance_by_setting_and_the_header_overrides_it(
    harness_factory: Any,
) -> None:
    h = await harness_factory(ROLES, acceptance="spine")
    status, _, headers, message_id = await post(h, acceptance=None)
    assert (status, headers["mhs-outcome"]) == (202, "delivered")
    assert h.events_for(Event.DELIVERY_DELIVERED, message_id)
    status, _, headers, message_id = await post(h, acceptance="Queued")
    assert status == 202
    assert "mhs-outcome" not in headers
    assert not h.events_for(Event.MESSAGE_OUTCOME_ANSWERED, message_id)
    await h.take(h.settings.inbound_queue(RECIPIENT))
    await h.take(h.settings.inbound_queue(RECIPIENT))


async def test_a_bad_acceptance_header_is_refused(harness_factory: Any) -> None:
    h = await harness_factory(("outbound",))
    status, body, _, _ = await post(h, acceptance="adaptor")
    assert status == 400
    assert body.decode() == "400: mhs-acceptance header must be 'queued' or 'spine', got 'adaptor'"
    assert await h.depth(h.settings.outbound_queue) == 0


async def test_queued_acceptance_is_unchanged_and_names_no_reply_queue(
    harness_factory: Any,
) -> None:
    h = await harness_factory(("outbound",))
    status, body, headers, message_id = await post(h, acceptance=None)
    assert (status, body, headers.get("mhs-outcome")) == (202, b"", None)
    queued = await h.take(h.settings.outbound_queue)
    assert queued.message_id == message_id
    assert REPLY_TO not in queued.headers


async def test_without_an_outcome_in_time_the_answer_is_a_pending_202(
    harness_factory: Any,
) -> None:
    # No worker: the message stays queued, durable, and the request is not held forever.
    h = await harness_factory(("outbound",), acceptance_timeout_s=0.5)
    started = time.monotonic()
    status, body, headers, message_id = await post(h)
    assert (status, body, headers["mhs-outcome"]) == (202, b"", "pending")
    assert time.monotonic() - started < 3
    queued = await h.take(h.settings.outbound_queue)
    assert queued.message_id == message_id
    assert queued.headers[REPLY_TO] == reply_queue(h)
    [answered] = h.events_for(Event.MESSAGE_OUTCOME_ANSWERED, message_id)
    assert (answered["status"], answered["outcome"]) == (202, "pending")


async def test_a_stopping_replica_answers_its_held_requests_pending(
    harness_factory: Any,
) -> None:
    h = await harness_factory(("outbound",), acceptance_timeout_s=30.0)
    app = create_outbound_app(h.settings, h.directory)
    runner = web.AppRunner(app, shutdown_timeout=3.0, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    message_id = new_id()
    held = asyncio.create_task(post(h, message_id=message_id, url=f"http://{host}:{port}"))
    deadline = time.monotonic() + 10
    while not h.events_for(Event.MESSAGE_QUEUED, message_id):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await runner.cleanup()
    status, _, headers, _ = await held
    assert (status, headers["mhs-outcome"]) == (202, "pending")
    assert (await h.take(h.settings.outbound_queue)).message_id == message_id


async def test_a_second_request_for_a_held_message_id_is_refused(harness_factory: Any) -> None:
    h = await harness_factory(("outbound",), acceptance_timeout_s=1.0)
    message_id = new_id()
    first, second = await asyncio.gather(
        post(h, message_id=message_id), post(h, message_id=message_id)
    )
    assert sorted((first[0], second[0])) == [202, 409]
    held = first if first[0] == 202 else second
    assert held[2]["mhs-outcome"] == "pending"
    assert await h.depth(h.settings.outbound_queue) == 1  # the refused one was not queued


async def test_a_late_outcome_is_dropped_once_the_pending_202_was_answered(
    harness_factory: Any,
) -> None:
    h = await harness_factory(ROLES, acceptance_timeout_s=0.5)
    await h.add_fault(kind="latency", delay=1500, from_asid=SENDER)
    status, _, headers, message_id = await post(h)
    assert (status, headers["mhs-outcome"]) == (202, "pending")
    assert (await h.take(h.settings.inbound_queue(RECIPIENT))).message_id == message_id
    await nothing_stray(h, message_id)
    assert await h.depth(h.settings.inbound_queue(SENDER)) == 0


async def test_a_message_error_is_the_adaptors_500_and_the_notice_lists_the_same_errors(
    harness_factory: Any,
) -> None:
    h = await harness_factory(ROLES)
    await h.add_fault(kind="message-error", code="501319:Unknown eb:CPAId", from_asid=SENDER)
    status, body, headers, message_id = await post(h)
    assert status == 500
    assert (headers["Message-Id"], headers["mhs-outcome"]) == (message_id, "rejected")
    errors = assert_adaptor_error(body, headers, process_key="EBXML_ERROR_HANDLER0005")
    assert orjson.loads(body)["error_message"] == SPINE_ERROR
    assert errors == [
        {
            "codeContext": "urn:oasis:names:tc:ebxml-msg:service:errors",
            "errorCode": "ValueNotRecognized",
            "severity": "Error",
            "description": "501319:Unknown eb:CPAId",
            "errorType": "ebxml_error",
        }
    ]
    notice = await h.take(h.settings.inbound_queue(SENDER))
    assert notice.message_id == message_id
    notified = orjson.loads(notice.body)
    assert notified["errors"] == errors
    assert notified["payload"] is None
    assert "MessageError" in notified["ebXML"]
    await nothing_stray(h, message_id)


async def test_a_final_soap_fault_is_the_adaptors_500_at_once(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    await h.add_fault(kind="soap-fault", code="300", from_asid=SENDER)
    status, body, headers, message_id = await post(h)
    assert (status, headers["mhs-outcome"]) == (500, "rejected")
    errors = assert_adaptor_error(body, headers, process_key="SOAP_ERROR_HANDLER0002")
    assert errors == [
        {
            "codeContext": "urn:nhs:names:error:tms",
            "errorCode": "300",
            "severity": "Error",
            "location": "Not Supported",
            "description": "Injected SOAP fault 300",
            "errorType": "soap_fault",
        }
    ]
    assert len(h.events_for(Event.DELIVERY_ATTEMPT, message_id)) == 1


async def test_a_retriable_soap_fault_then_success_is_a_202(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    await h.add_fault(kind="soap-fault", code="206", attempts=1, from_asid=SENDER)
    status, _, headers, message_id = await post(h)
    assert (status, headers["mhs-outcome"]) == (202, "delivered")
    attempts = h.events_for(Event.DELIVERY_ATTEMPT, message_id)
    assert [a["outcome"] for a in attempts] == ["transient", "accepted"]
    assert (await h.take(h.settings.inbound_queue(RECIPIENT))).message_id == message_id


async def test_retries_exhausted_on_a_soap_fault_is_a_500_with_spines_last_errors(
    harness_factory: Any,
) -> None:
    h = await harness_factory(ROLES)
    await h.add_fault(kind="soap-fault", code="206", from_asid=SENDER)
    status, body, headers, message_id = await post(h)
    assert (status, headers["mhs-outcome"]) == (500, "dead-lettered")
    errors = assert_adaptor_error(body, headers, process_key="SOAP_ERROR_HANDLER0002")
    assert [(e["errorCode"], e["errorType"]) for e in errors] == [("206", "soap_fault")]
    assert len(h.events_for(Event.DELIVERY_ATTEMPT, message_id)) == 3  # retries=2
    notice = await h.take(h.settings.inbound_queue(SENDER))
    assert orjson.loads(notice.body)["errors"] == errors


async def test_transport_errors_out_of_retries_are_a_delivery_failure(
    harness_factory: Any,
) -> None:
    h = await harness_factory(ROLES)
    await h.add_fault(kind="http-status", status=503, from_asid=SENDER)
    status, body, headers, _ = await post(h)
    assert (status, headers["mhs-outcome"]) == (500, "dead-lettered")
    [error] = assert_adaptor_error(body, headers, process_key="MHS_DELIVERY_FAILURE")
    assert (error["errorType"], error["errorCode"]) == ("delivery_failure", "DeliveryFailure")
    assert error["description"] == "retries exhausted after 3 attempts: HTTP 503"
    assert "location" not in error


async def test_a_give_up_without_spine_errors_says_what_happened(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    # A80009 shares no data with A80001: the Spine Security Proxy refuses it (HTTP 403).
    status, body, headers, message_id = await post(h, ods_code="A80009")
    assert (status, headers["mhs-outcome"]) == (500, "rejected")
    errors = assert_adaptor_error(body, headers, process_key="MHS_DELIVERY_FAILURE")
    assert orjson.loads(body)["error_message"] == (
        "The message could not be delivered. Contact system administrator."
    )
    [error] = errors
    assert error["errorType"] == "delivery_failure"
    assert error["errorCode"] == "DeliveryFailure"
    assert error["codeContext"] == "urn:oasis:names:tc:ebxml-msg:service:errors"
    assert error["description"].startswith("FOT_CHECK_FAILED")
    notice = await h.take(h.settings.inbound_queue(SENDER))
    assert notice.message_id == message_id
    assert orjson.loads(notice.body)["errors"] == errors


async def test_wait_for_response_in_spine_acceptance(harness_factory: Any) -> None:
    h = await harness_factory(ROLES, sync_async_timeout_s=10.0)
    # Delivered: the request waits on for Spine's reply, as without spine acceptance.
    status, body, headers, message_id = await post(
        h, ods_code=None, interaction=SCR_QUERY, wait=True
    )
    assert status == 200, body
    assert body.decode().startswith("<QUPC_IN160102UK05")
    assert headers["Message-Id"] == message_id
    # Refused: the adaptor's 500 at once, not after the wait for a reply that cannot come.
    await h.add_fault(kind="message-error", from_asid=SENDER, interaction_id=SCR_QUERY)
    started = time.monotonic()
    status, body, headers, _ = await post(h, ods_code=None, interaction=SCR_QUERY, wait=True)
    assert (status, headers["mhs-outcome"]) == (500, "rejected")
    assert time.monotonic() - started < 5
    [error] = assert_adaptor_error(body, headers, process_key="EBXML_ERROR_HANDLER0005")
    assert error["errorType"] == "ebxml_error"
    await h.take(h.settings.inbound_queue(SENDER))  # the notice
    assert await h.depth(h.settings.inbound_queue(SENDER)) == 0


async def test_the_embedded_broker_answers_in_spine_acceptance_too(harness_factory: Any) -> None:
    h = await harness_factory(ROLES, memory=True)
    status, _, headers, _ = await post(h)
    assert (status, headers["mhs-outcome"]) == (202, "delivered")


async def test_an_outcome_left_unclaimed_never_reaches_an_instance(harness_factory: Any) -> None:
    # A replica that died leaves outcomes in its reply queue; they expire into the
    # unclaimed queue, where the other replicas pass replies on, but drop outcomes.
    h = await harness_factory(("outbound",))
    outcome = DeliveryOutcome(outcome="delivered")
    await h.broker.publish(
        h.settings.unclaimed_replies_queue,
        OutgoingMessage(
            body=outcome.model_dump_json().encode(),
            message_id=new_id(),
            type=OUTCOME_TYPE,
            headers={"to-asid": SENDER},
        ),
    )
    deadline = time.monotonic() + 10
    while await h.depth(h.settings.unclaimed_replies_queue) > 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert await h.depth(h.settings.inbound_queue(SENDER)) == 0
    assert not h.events(Event.MESSAGE_REPLY_FORWARDED)
