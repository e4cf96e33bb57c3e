"""Sending an ebXML request and judging the answer, again while the caller's rules allow:
what the delivery workers and the Spine proxy (sending Spine's replies) share. One tenacity
set-up for the retries; the caller's rules say how long to wait before the next attempt,
or to stop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from mhs.reliability.policy import Outcome, judge_response


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST: its number (counting the attempts made before this call), the answer's
    status (None if none came), what the answer means and how long it took."""

    number: int
    status: int | None
    outcome: Outcome
    duration_ms: float


NextWait = Callable[[Attempt], float | None]
"""After a transient failure: seconds to wait before the next attempt, or None to stop."""


class _Again(Exception):
    def __init__(self, attempt: Attempt, wait_s: float | None) -> None:
        super().__init__(attempt.outcome.reason)
        self.attempt = attempt
        self.wait_s = wait_s


def _again(state: RetryCallState) -> _Again:
    error = state.outcome.exception() if state.outcome else None
    assert isinstance(error, _Again)  # retry_if_exception_type lets no other through
    return error


async def send_judged(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    first: int,
    next_wait: NextWait,
    heard: Callable[[Attempt], None] = lambda _: None,
    waiting: Callable[[Attempt, float], None] = lambda _, __: None,
) -> Attempt:
    """POST ``body`` until the answer is accepted or final, or ``next_wait`` says stop;
    the last attempt. ``first`` numbers the first attempt; ``heard`` is told of every
    attempt and ``waiting`` of every wait before the next."""

    async def attempt(number: int) -> Attempt:
        made = await _post(session, url, body, headers, number)
        heard(made)
        if made.outcome.verdict == "transient":
            raise _Again(made, next_wait(made))
        return made

    # Most messages go through at the first attempt, which needs none of tenacity's
    # machinery: with it, a worker spent about 100 µs more CPU a message (scripts/bench).
    # Tenacity takes over from the first wait.
    try:
        return await attempt(first)
    except _Again as again:
        if again.wait_s is None:
            return again.attempt
        waiting(again.attempt, again.wait_s)
        await asyncio.sleep(again.wait_s)
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_Again),
        stop=lambda state: _again(state).wait_s is None,
        wait=lambda state: _again(state).wait_s or 0.0,
        before_sleep=lambda state: waiting(_again(state).attempt, _again(state).wait_s or 0.0),
        reraise=True,
    )

    last: Attempt | None = None
    try:
        async for trying in retrying:
            with trying:
                last = await attempt(first + trying.retry_state.attempt_number)
    except _Again as again:
        return again.attempt
    assert last is not None  # tenacity ran the block at least once
    return last


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    number: int,
) -> Attempt:
    started = time.perf_counter()
    # A trace id per attempt, as Spine's SSP logs each hop; the attempt number lets the
    # receiving MHS tell a retry from a first send.
    sent = {**headers, "Ssp-TraceID": str(uuid.uuid4()), "Mhs-Attempt": str(number)}
    try:
        async with session.post(url, data=body, headers=sent) as response:
            reply = await response.read()
            outcome = judge_response(response.status, response.content_type, reply)
            status: int | None = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        outcome = Outcome("transient", f"{type(error).__name__}: {error}".rstrip(": "))
        status = None
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return Attempt(number, status, outcome, duration_ms)
