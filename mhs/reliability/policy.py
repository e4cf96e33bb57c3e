"""Reliable messaging rules: how many attempts, which answers are worth retrying, and one
decision for each step of a message: send it, acknowledge it, retry it (here, or in a delay
queue), or give up (dead-letter it and tell its sender)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import orjson

from mhs.directory import Reliability
from mhs.ebxml import ErrorDetail, SpineReply, classify_reply
from mhs.reliability.headers import Progress
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


@dataclass(frozen=True, slots=True)
class Send:
    """Send the message now."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """The proxy accepted it: acknowledge it on its queue."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Send again after ``wait_s``: here in the worker if the wait is short, else this copy
    waits in a delay queue, carrying its progress."""

    wait_s: float
    in_process: bool

    @property
    def delay_ms(self) -> int:
        return max(1, round(self.wait_s * 1000))


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop: dead-letter the message and tell its sender why (Spine's errors, if it sent
    any)."""

    outcome: Literal["rejected", "dead-lettered", "expired"]
    reason: str
    errors: tuple[ErrorDetail, ...] = ()


Settlement = Delivered | Retry | GiveUp
Decision = Send | Settlement


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

    @overload
    def decide(
        self, progress: Progress, *, accepted_at: float, now: float, last: None = None
    ) -> Send | GiveUp: ...

    @overload
    def decide(
        self, progress: Progress, *, accepted_at: float, now: float, last: Outcome
    ) -> Settlement: ...

    def decide(
        self, progress: Progress, *, accepted_at: float, now: float, last: Outcome | None = None
    ) -> Decision:
        """What to do with a message: as it arrives from its queue (no ``last`` attempt
        yet), and after each attempt (``progress`` counting it)."""
        if last is None:
            return self._on_arrival(progress, accepted_at=accepted_at, now=now)
        if last.verdict == "accepted":
            return Delivered()
        errors = tuple(last.reply.errors) if last.reply else ()
        if last.verdict == "permanent":
            return GiveUp("rejected", last.reason, errors)
        return self._after_failure(progress, accepted_at=accepted_at, now=now, errors=errors)

    def _on_arrival(self, progress: Progress, *, accepted_at: float, now: float) -> Send | GiveUp:
        if now >= self.deadline(progress, accepted_at):
            return GiveUp("expired", self._why("persist duration passed", progress))
        if progress.attempts >= self.max_attempts:
            return GiveUp("dead-lettered", self._why("retries exhausted", progress))
        return Send()

    def _after_failure(
        self, progress: Progress, *, accepted_at: float, now: float, errors: tuple[ErrorDetail, ...]
    ) -> Retry | GiveUp:
        if progress.attempts >= self.max_attempts:
            # As the NHS adaptor: out of retries, the caller learns Spine's last errors.
            return GiveUp("dead-lettered", self._why("retries exhausted", progress), errors)
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
