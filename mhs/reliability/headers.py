"""Every ``x-mhs-*`` header of reliable delivery, and a message's progress read from them.

How far a message has got travels in its own headers, so a worker that dies takes nothing
with it. RabbitMQ's own headers (x-death, x-delivery-count, ...) start with x- too; ours
with x-mhs-. Times are epoch milliseconds: AMQP floats have 32 bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

# A header value as both transports carry it (mhs.broker.HeaderValue, without importing it).
HeaderValue = str | int | float | bool | None

# Progress: attempts made and when, the last error, a replay from the dead-letter queue.
ATTEMPTS = "x-mhs-attempts"
FIRST_ATTEMPT_AT = "x-mhs-first-attempt-at-ms"
LAST_ATTEMPT_AT = "x-mhs-last-attempt-at-ms"
LAST_ERROR = "x-mhs-last-error"
REPLAYED_AT = "x-mhs-replayed-at-ms"
MAX_ERROR_CHARS = 500
# What a dead letter says about itself.
OUTCOME = "x-mhs-outcome"
REASON = "x-mhs-reason"
ACCEPTED_AT = "x-mhs-accepted-at-ms"
DEAD_LETTERED_AT = "x-mhs-dead-lettered-at-ms"
REPLAYS = "x-mhs-replays"
# Spine acceptance: the reply queue of the outbound replica holding the request, told how
# the delivery ended (mhs.messages.outcomes). Only such messages carry it.
REPLY_TO = "x-mhs-reply-to"


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
