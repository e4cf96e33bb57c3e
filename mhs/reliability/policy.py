"""Reliable messaging rules: how many attempts, which answers are worth retrying, and what
to do after a failure (retry here, wait in a delay queue, or give up)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import orjson

from mhs.broker import HeaderValue
from mhs.directory import Reliability
from mhs.ebxml import SpineReply, classify_reply
from mhs.settings import RetryCountMode
from mhs.ssp.outcome import outcome_token

# Spine's TMS error base: system failure (200), routing delivery failure (206) and
# memo storage failure (208) are transient; every other fault code is final.
RETRIABLE_SOAP_CODES = frozenset({"200", "206", "208"})
RETRIABLE_HTTP = frozenset({408, 429})

Verdict = Literal["accepted", "transient", "permanent"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery attempt came to, and the reason to record if it failed."""

    verdict: Verdict
    reason: str
    reply: SpineReply | None = None


def max_attempts(reliability: Reliability, mode: RetryCountMode) -> int:
    """Sends allowed in total: SpineTools counts the first send, the NHS adaptor does not."""
    if mode == "attempts":
        return max(1, reliability.retries)
    return reliability.retries + 1


def _reply_outcome(reply: SpineReply, status: int) -> Outcome:
    errors = "; ".join(f"{e.code}:{e.description}" for e in reply.errors) or "no detail"
    if reply.kind == "message-error":
        return Outcome("permanent", f"MessageError {errors}", reply)
    retriable = bool(reply.errors) and all(e.code in RETRIABLE_SOAP_CODES for e in reply.errors)
    verdict: Verdict = "transient" if retriable else "permanent"
    return Outcome(verdict, f"SOAP fault {errors} (HTTP {status})", reply)


def judge_response(status: int, content_type: str | None, body: bytes) -> Outcome:
    """Classify the proxy's answer to one delivery attempt."""
    if 400 <= status < 500 and status not in RETRIABLE_HTTP:
        token = None
        if content_type and "json" in content_type:
            try:
                token = outcome_token(orjson.loads(body))
            except orjson.JSONDecodeError:
                token = None
        return Outcome("permanent", token or f"HTTP {status}")
    reply = classify_reply(content_type, body)
    if reply.kind in ("message-error", "soap-fault"):
        return _reply_outcome(reply, status)
    if 200 <= status < 300:
        return Outcome("accepted", f"HTTP {status}", reply)
    return Outcome("transient", f"HTTP {status}", reply)


# How far a message has got travels in its own headers, so a worker that dies takes
# nothing with it. RabbitMQ's own headers (x-death, x-delivery-count, ...) start with x-
# too; ours with x-mhs-. Times are epoch milliseconds: AMQP floats have 32 bits.
ATTEMPTS = "x-mhs-attempts"
FIRST_ATTEMPT_AT = "x-mhs-first-attempt-at-ms"
LAST_ATTEMPT_AT = "x-mhs-last-attempt-at-ms"
LAST_ERROR = "x-mhs-last-error"
REPLAYED_AT = "x-mhs-replayed-at-ms"
MAX_ERROR_CHARS = 500


def header_number(value: HeaderValue) -> float | None:
    """A numeric header's value (None if absent or not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def header_time(value: HeaderValue) -> float | None:
    """Epoch seconds from an epoch-milliseconds header."""
    ms = header_number(value)
    return None if ms is None else ms / 1000


def time_header(epoch_s: float) -> int:
    """Epoch seconds as the epoch milliseconds a header carries."""
    return round(epoch_s * 1000)


@dataclass(frozen=True, slots=True)
class Progress:
    """A queued message's attempts so far, read from its headers.

    A delivery the broker hands out again (a worker died or lost its link while holding
    it) counts as one more attempt: one may have been in flight.
    """

    attempts: int = 0
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    last_error: str | None = None
    replayed_at: float | None = None
    resumed: bool = False

    @classmethod
    def of(cls, headers: Mapping[str, HeaderValue], *, redelivered: bool) -> Progress:
        recorded = header_number(headers.get(ATTEMPTS))
        returned = header_number(headers.get("x-delivery-count")) or 0
        in_flight = max(int(returned), 1 if redelivered else 0)
        error = headers.get(LAST_ERROR)
        return cls(
            attempts=max(0, int(recorded or 0)) + in_flight,
            first_attempt_at=header_time(headers.get(FIRST_ATTEMPT_AT)),
            last_attempt_at=header_time(headers.get(LAST_ATTEMPT_AT)),
            last_error=str(error) if error is not None else None,
            replayed_at=header_time(headers.get(REPLAYED_AT)),
            resumed=in_flight > 0,
        )

    def after(self, attempts: int, *, first_at: float, last_at: float, error: str) -> Progress:
        """This progress after ``attempts`` more failed attempts, made from ``first_at`` to
        ``last_at``."""
        return replace(
            self,
            attempts=self.attempts + attempts,
            first_attempt_at=self.first_attempt_at or first_at,
            last_attempt_at=last_at,
            last_error=error[:MAX_ERROR_CHARS],
            resumed=False,
        )

    def window_start(self, accepted_at: float) -> float:
        """When the persist duration started: acceptance, or the last replay from the
        dead-letter queue."""
        return max(accepted_at, self.replayed_at or 0.0)

    def headers(self) -> dict[str, HeaderValue]:
        """The headers that carry this progress to the next queue."""
        times = {
            FIRST_ATTEMPT_AT: self.first_attempt_at,
            LAST_ATTEMPT_AT: self.last_attempt_at,
            REPLAYED_AT: self.replayed_at,
        }
        headers: dict[str, HeaderValue] = {ATTEMPTS: self.attempts}
        headers |= {k: time_header(v) for k, v in times.items() if v is not None}
        if self.last_error is not None:
            headers[LAST_ERROR] = self.last_error
        return headers


@dataclass(frozen=True, slots=True)
class Retry:
    """Send again after ``wait_s``: in the worker if the wait is short, else in a delay queue."""

    wait_s: float
    in_process: bool

    @property
    def delay_ms(self) -> int:
        return max(1, round(self.wait_s * 1000))


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop: dead-letter the message and tell its sender."""

    outcome: Literal["dead-lettered", "expired"]
    reason: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """One interaction's retry rules, as the directory and settings give them."""

    max_attempts: int
    interval_s: float
    persist_s: float
    in_process_max_s: float

    @classmethod
    def of(
        cls, reliability: Reliability, mode: RetryCountMode, in_process_max_s: float
    ) -> RetryPolicy:
        return cls(
            max_attempts=max_attempts(reliability, mode),
            interval_s=reliability.retry_interval.total_seconds(),
            persist_s=reliability.persist_duration.total_seconds(),
            in_process_max_s=in_process_max_s,
        )

    def deadline(self, progress: Progress, accepted_at: float) -> float:
        return progress.window_start(accepted_at) + self.persist_s

    def on_arrival(self, progress: Progress, *, accepted_at: float, now: float) -> GiveUp | None:
        """Whether a message taken from the queue may be sent at all."""
        if now >= self.deadline(progress, accepted_at):
            return GiveUp("expired", self._why("persist duration passed", progress))
        if progress.attempts >= self.max_attempts:
            return GiveUp("dead-lettered", self._why("retries exhausted", progress))
        return None

    def after_failure(
        self, progress: Progress, *, accepted_at: float, now: float
    ) -> Retry | GiveUp:
        """What follows a transient failure; ``progress`` already counts it."""
        if progress.attempts >= self.max_attempts:
            return GiveUp("dead-lettered", self._why("retries exhausted", progress))
        if now + self.interval_s >= self.deadline(progress, accepted_at):
            return GiveUp(
                "expired", self._why("persist duration ends before the next retry", progress)
            )
        return Retry(self.interval_s, in_process=self.interval_s <= self.in_process_max_s)

    @staticmethod
    def _why(what: str, progress: Progress) -> str:
        attempts = f"{progress.attempts} attempt{'s' if progress.attempts != 1 else ''}"
        error = progress.last_error or (
            "a worker stopped mid-attempt" if progress.attempts else "never sent"
        )
        return f"{what} after {attempts}: {error}"
