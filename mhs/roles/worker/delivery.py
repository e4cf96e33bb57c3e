"""The delivery worker: takes queued messages and sends them to Spine as ebXML, retrying
short waits itself; the retry policy decides each step and mhs.roles.worker.settle carries
out how a delivery ends.

A message is acked on the outbound queue only once the proxy has accepted it, once a copy
carrying its progress waits in a delay queue for its next attempt, or once it is on the
dead-letter queue with its reason and its sender has been told. Until then a worker that
dies leaves it on the queue, and the next worker counts the attempt that was in flight.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from pydantic import ValidationError

from mhs.broker import Broker, Delivery, Subscription
from mhs.directory import Directory
from mhs.messages.queues import declare_outbound
from mhs.messages.records import OutboundRecord
from mhs.observe.events import Event
from mhs.reliability.headers import Progress
from mhs.reliability.policy import GiveUp, Retry, RetryPolicy, Send
from mhs.roles.http.send import Attempt, send_judged
from mhs.roles.worker.settle import Settler
from mhs.settings import Settings
from mhs.spine.requests import SpineRequest, spine_request


class DeliveryWorker:
    """Consumes the outbound queue and owns the in-flight deliveries."""

    def __init__(
        self,
        settings: Settings,
        directory: Directory,
        broker: Broker,
        session: aiohttp.ClientSession,
        log: Any,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.broker = broker
        self.session = session
        self.log = log
        self.settler = Settler(settings, broker, log)
        self.subscription: Subscription | None = None
        self._in_flight = 0
        self._handed_back = 0

    async def start(self) -> None:
        await declare_outbound(self.broker, self.settings)
        self.subscription = await self.broker.consume(
            self.settings.outbound_queue, self.handle, prefetch=self.settings.prefetch
        )

    async def stop(self) -> None:
        """Take no more work; give in-flight deliveries the shutdown timeout to finish,
        then hand what is left back to the queue."""
        if self.subscription is None:
            return
        started = time.perf_counter()
        in_flight, handed_back = self._in_flight, self._handed_back
        await self.subscription.cancel(grace_s=self.settings.shutdown_timeout_s)
        self.log.info(
            Event.WORKER_DRAINED,
            in_flight=in_flight,
            handed_back=self._handed_back - handed_back,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    @property
    def in_flight(self) -> int:
        """Deliveries being worked on now."""
        return self._in_flight

    def readiness(self) -> str | None:
        if self.subscription is None or not self.subscription.active:
            return "not consuming the outbound queue"
        return None

    async def handle(self, delivery: Delivery) -> None:
        self._in_flight += 1
        try:
            await self._deliver(delivery)
        except asyncio.CancelledError:
            # Shutdown or a lost link: the broker gives the message to a worker again.
            self._handed_back += 1
            raise
        finally:
            self._in_flight -= 1

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            record = OutboundRecord.model_validate_json(delivery.body)
        except ValidationError as error:
            await self.settler.dead_letter_unreadable(delivery, str(error))
            return
        progress = Progress.of(delivery.headers, redelivered=delivery.redelivered)
        fields = record.log_fields()
        interaction = self.directory.interaction(record.interaction_id)
        recipient = self.directory.by_asid(record.to_asid)
        if interaction is None or recipient is None:
            problem = "interaction" if interaction is None else "recipient"
            unknown = GiveUp("rejected", f"unknown {problem} in the directory")
            await self.settler.carry_out(
                unknown, delivery, record, progress, fields, cpa_id=f"S{record.to_asid}"
            )
            return
        if progress.resumed:
            self.log.info(
                Event.DELIVERY_RESUMED, attempt=progress.attempts, reason=progress.last_error,
                **fields,
            )  # fmt: skip
        policy = RetryPolicy.of(
            interaction.reliability,
            self.settings.retry_count_mode,
            self.settings.inprocess_retry_max_s,
        )
        arrival = policy.decide(progress, accepted_at=record.accepted_at, now=time.time())
        if not isinstance(arrival, Send):
            await self.settler.carry_out(
                arrival, delivery, record, progress, fields, cpa_id=recipient.cpa_id
            )
            return
        first_at = time.time()
        request = spine_request(record, interaction, recipient)
        last = await self._send(record, policy, progress, request, fields)
        after = progress.after(
            last.number - progress.attempts, first_at=first_at, last_at=time.time(),
            error=last.outcome.reason,
        )  # fmt: skip
        decision = policy.decide(
            after, accepted_at=record.accepted_at, now=time.time(), last=last.outcome
        )
        await self.settler.carry_out(
            decision, delivery, record, after, fields, cpa_id=recipient.cpa_id
        )

    async def _send(
        self,
        record: OutboundRecord,
        policy: RetryPolicy,
        progress: Progress,
        request: SpineRequest,
        fields: dict[str, str],
    ) -> Attempt:
        """Attempts at sending ``request``, as many as the policy lets this worker make."""

        def next_wait(attempt: Attempt) -> float | None:
            # Keep retrying in this worker only while the next wait is a short one.
            made = attempt.number - progress.attempts
            after = progress.after(made, first_at=0, last_at=0, error="")
            step = policy.decide(
                after, accepted_at=record.accepted_at, now=time.time(), last=attempt.outcome
            )
            return step.wait_s if isinstance(step, Retry) and step.in_process else None

        def heard(attempt: Attempt) -> None:
            self._log_attempt(attempt, fields)

        def waiting(attempt: Attempt, wait_s: float) -> None:
            self.log.info(
                Event.DELIVERY_RETRY_SCHEDULED, attempt=attempt.number, outcome="retry",
                reason=attempt.outcome.reason, wait_ms=round(wait_s * 1000, 3), queue=None,
                **fields,
            )  # fmt: skip

        url = self.settings.proxy_url + request.path
        return await send_judged(
            self.session, url, request.body, request.headers, first=progress.attempts + 1,
            next_wait=next_wait, heard=heard, waiting=waiting,
        )  # fmt: skip

    def _log_attempt(self, attempt: Attempt, fields: dict[str, str]) -> None:
        outcome = attempt.outcome
        if outcome.verdict == "accepted":
            # delivery.delivered_to_proxy follows at INFO: this line is DEBUG only.
            self.log.debug(
                Event.DELIVERY_ATTEMPT, attempt=attempt.number, outcome=outcome.verdict,
                status=attempt.status, reason=outcome.reason, duration_ms=attempt.duration_ms,
                **fields,
            )  # fmt: skip
        else:
            self.log.info(
                Event.DELIVERY_ATTEMPT, attempt=attempt.number, outcome=outcome.verdict,
                status=attempt.status, reason=outcome.reason, duration_ms=attempt.duration_ms,
                **fields,
            )  # fmt: skip
        if outcome.verdict == "accepted":
            self.log.info(
                Event.DELIVERY_DELIVERED, attempt=attempt.number, outcome="delivered",
                status=attempt.status, duration_ms=attempt.duration_ms, **fields,
            )  # fmt: skip
