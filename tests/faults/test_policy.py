"""The retry policy's decisions and the progress headers, as pure functions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mhs.broker import HeaderValue
from mhs.directory import Reliability
from mhs.ebxml import ErrorDetail, build_soap_fault
from mhs.messages.copies import carried_headers
from mhs.reliability.headers import Progress
from mhs.reliability.policy import (
    Delivered,
    GiveUp,
    Outcome,
    Retry,
    RetryPolicy,
    Send,
    judge_response,
)


def reliability(retries: int = 2, interval_s: float = 0.2, persist_s: float = 300) -> Reliability:
    return Reliability(
        retries=retries,
        retry_interval=timedelta(seconds=interval_s),
        persist_duration=timedelta(seconds=persist_s),
        ack_requested="always",
        duplicate_elimination="always",
        sync_reply_mode="None",
    )


def soap_fault(*codes: str) -> bytes:
    return build_soap_fault([ErrorDetail("soap", code, "Error", f"fault {code}") for code in codes])


@pytest.mark.parametrize(
    ("status", "content_type", "body", "verdict"),
    [
        (202, None, b"", "accepted"),
        (500, "text/plain", b"boom", "transient"),
        (503, "text/plain", b"busy", "transient"),
        (504, "application/fhir+json", b"{}", "transient"),
        (408, "text/plain", b"", "transient"),
        (429, "text/plain", b"", "transient"),
        (400, "text/plain", b"", "permanent"),
        (403, "application/fhir+json", b"{}", "permanent"),
        (500, "text/xml", soap_fault("206"), "transient"),
        (500, "text/xml", soap_fault("200", "208"), "transient"),
        (500, "text/xml", soap_fault("206", "300"), "permanent"),
        (500, "text/xml", soap_fault("300"), "permanent"),
    ],
)
def test_which_answers_are_worth_retrying(
    status: int, content_type: str | None, body: bytes, verdict: str
) -> None:
    assert judge_response(status, content_type, body).verdict == verdict


def test_progress_counts_a_redelivery_as_an_attempt_that_was_in_flight() -> None:
    assert Progress.of({}, redelivered=False) == Progress()
    fresh = Progress.of({"x-mhs-attempts": 2, "x-delivery-count": 0}, redelivered=False)
    assert (fresh.attempts, fresh.resumed) == (2, False)
    # Quorum queues count returns; classic ones only say "redelivered".
    quorum = Progress.of({"x-mhs-attempts": 2, "x-delivery-count": 3}, redelivered=True)
    assert (quorum.attempts, quorum.resumed) == (5, True)
    classic = Progress.of({"x-mhs-attempts": 2}, redelivered=True)
    assert (classic.attempts, classic.resumed) == (3, True)
    odd = Progress.of({"x-mhs-attempts": "two", "x-delivery-count": True}, redelivered=False)
    assert odd.attempts == 0


def test_progress_travels_in_headers() -> None:
    progress = Progress().after(
        3, first_at=1795574793.951, last_at=1795574794.5, error="HTTP 503" * 100
    )
    headers = progress.headers()
    assert headers["x-mhs-attempts"] == 3
    # Epoch milliseconds: an AMQP float (32 bits) would lose minutes.
    assert headers["x-mhs-first-attempt-at-ms"] == 1795574793951
    assert headers["x-mhs-last-attempt-at-ms"] == 1795574794500
    assert len(str(headers["x-mhs-last-error"])) == 500
    again = Progress.of(headers, redelivered=False)
    assert again == progress
    later = again.after(1, first_at=200.0, last_at=200.0, error="HTTP 500")
    assert (later.attempts, later.first_attempt_at, later.last_error) == (
        4,
        1795574793.951,
        "HTTP 500",
    )


FAILED = Outcome("transient", "HTTP 503")


def test_an_attempt_s_verdict_decides_what_follows() -> None:
    policy = RetryPolicy.of(reliability(retries=2), "retries", in_process_max_s=1.0)
    progress = Progress(attempts=1)
    assert policy.decide(progress, accepted_at=0, now=1, last=Outcome("accepted", "HTTP 202")) == (
        Delivered()
    )
    refused = policy.decide(progress, accepted_at=0, now=1, last=Outcome("permanent", "HTTP 403"))
    assert refused == GiveUp("rejected", "HTTP 403")
    assert isinstance(policy.decide(progress, accepted_at=0, now=1, last=FAILED), Retry)


def test_short_waits_retry_in_the_worker_and_long_ones_in_a_delay_queue() -> None:
    short = RetryPolicy.of(reliability(interval_s=0.2), "retries", in_process_max_s=1.0)
    long = RetryPolicy.of(reliability(interval_s=1.5), "retries", in_process_max_s=1.0)
    progress = Progress(attempts=1)
    assert short.decide(progress, accepted_at=0, now=10, last=FAILED) == Retry(0.2, in_process=True)
    step = long.decide(progress, accepted_at=0, now=10, last=FAILED)
    assert step == Retry(1.5, in_process=False)
    assert isinstance(step, Retry)
    assert step.delay_ms == 1500


@pytest.mark.parametrize(("mode", "sends"), [("retries", 3), ("attempts", 2)])
def test_the_retry_count_means_what_the_mode_says(mode: str, sends: int) -> None:
    policy = RetryPolicy.of(reliability(retries=2), mode, in_process_max_s=1.0)  # type: ignore[arg-type]
    assert isinstance(
        policy.decide(Progress(attempts=sends - 1), accepted_at=0, now=1, last=FAILED), Retry
    )
    step = policy.decide(
        Progress(attempts=sends, last_error="HTTP 503"), accepted_at=0, now=1, last=FAILED
    )
    assert step == GiveUp("dead-lettered", f"retries exhausted after {sends} attempts: HTTP 503")


def test_out_of_retries_the_give_up_carries_spines_last_errors() -> None:
    policy = RetryPolicy.of(reliability(retries=2), "retries", in_process_max_s=1.0)
    fault = judge_response(500, "text/xml", soap_fault("206"))
    step = policy.decide(Progress(attempts=3), accepted_at=0, now=1, last=fault)
    assert isinstance(step, GiveUp)
    assert step.outcome == "dead-lettered"
    assert [(e.kind, e.code) for e in step.errors] == [("soap", "206")]


def test_a_message_expires_when_its_next_retry_would_come_too_late() -> None:
    policy = RetryPolicy.of(reliability(retries=50, interval_s=2, persist_s=10), "retries", 1.0)
    progress = Progress(attempts=4, last_error="HTTP 500")
    assert isinstance(policy.decide(progress, accepted_at=100, now=107.9, last=FAILED), Retry)
    step = policy.decide(progress, accepted_at=100, now=108, last=FAILED)
    assert isinstance(step, GiveUp)
    assert step.outcome == "expired"
    assert step.reason.endswith("after 4 attempts: HTTP 500")


def test_on_arrival_a_message_past_its_time_or_its_attempts_is_not_sent() -> None:
    policy = RetryPolicy.of(reliability(retries=2, persist_s=60), "retries", 1.0)
    assert policy.decide(Progress(attempts=2), accepted_at=100, now=150) == Send()
    late = policy.decide(Progress(), accepted_at=100, now=160)
    assert late == GiveUp("expired", "persist duration passed after 0 attempts: never sent")
    crashed = policy.decide(Progress(attempts=3, resumed=True), accepted_at=100, now=110)
    assert crashed == GiveUp(
        "dead-lettered", "retries exhausted after 3 attempts: a worker stopped mid-attempt"
    )
    # A replay from the dead-letter queue starts the persist duration again.
    replayed = Progress(replayed_at=1000.0)
    assert policy.decide(replayed, accepted_at=100, now=1050) == Send()


def test_only_our_own_headers_travel_on() -> None:
    received: dict[str, HeaderValue] = {
        "interaction-id": "RCMR_IN010000UK05",
        "x-mhs-attempts": 2,
        "x-death": '[{"count": 1}]',
        "x-first-death-reason": "expired",
        "x-delivery-count": 1,
    }
    assert carried_headers(received) == {"interaction-id": "RCMR_IN010000UK05", "x-mhs-attempts": 2}
