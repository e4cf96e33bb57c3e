"""Delivery workers: take queued messages, send them to Spine as ebXML, retry, dead-letter.

A message is acked on the outbound queue only once the proxy has accepted it, once a copy
carrying its progress waits in a delay queue for its next attempt, or once it is on the
dead-letter queue with its reason and its sender has been told. Until then a worker that
dies leaves it on the queue, and the next worker counts the attempt that was in flight.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_fixed

from mhs.broker import Broker, BrokerError, Delivery, Subscription
from mhs.directory import Directory
from mhs.ebxml import ErrorDetail
from mhs.messages.queues import declare_delay, declare_outbound
from mhs.messages.records import OutboundRecord
from mhs.observe.events import Event
from mhs.observe.logs import get_logger
from mhs.reliability.notices import dead_letter, failure_notice, spine_request, waiting
from mhs.reliability.policy import GiveUp, Outcome, Progress, Retry, RetryPolicy, judge_response
from mhs.roles.common import (
    BROKER,
    DIRECTORY,
    LOG,
    METRICS,
    READINESS,
    SETTINGS,
    create_role_app,
)
from mhs.roles.http.client import client_session
from mhs.settings import Settings

ROLE = "worker"


class TransientFailure(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class PermanentFailure(Exception):
    """Spine refused the message; retrying cannot help."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


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
            await self._dead_letter_unreadable(delivery, str(error))
            return
        fields = record.log_fields()
        progress = Progress.of(delivery.headers, redelivered=delivery.redelivered)
        interaction = self.directory.interaction(record.interaction_id)
        recipient = self.directory.by_asid(record.to_asid)
        if interaction is None or recipient is None:
            problem = "interaction" if interaction is None else "recipient"
            await self._give_up(
                delivery,
                record,
                fields,
                progress,
                outcome="rejected",
                reason=f"unknown {problem} in the directory",
                cpa_id=f"S{record.to_asid}",
            )
            return
        if progress.resumed:
            self.log.info(
                Event.DELIVERY_RESUMED,
                attempt=progress.attempts,
                reason=progress.last_error,
                **fields,
            )
        policy = RetryPolicy.of(
            interaction.reliability,
            self.settings.retry_count_mode,
            self.settings.inprocess_retry_max_s,
        )
        stop = policy.on_arrival(progress, accepted_at=record.accepted_at, now=time.time())
        if stop is not None:
            await self._give_up(
                delivery,
                record,
                fields,
                progress,
                outcome=stop.outcome,
                reason=stop.reason,
                cpa_id=recipient.cpa_id,
            )
            return
        request = spine_request(record, interaction, recipient)
        url = self.settings.spine_proxy_url.rstrip("/") + request.path

        first_at = time.time()
        made = 0

        def more_here(attempts: int) -> bool:
            # Keep retrying in this worker only while the next wait is a short one.
            after = progress.after(attempts, first_at=0, last_at=0, error="")
            step = policy.after_failure(after, accepted_at=record.accepted_at, now=time.time())
            return isinstance(step, Retry) and step.in_process

        async def attempt() -> None:
            nonlocal made
            made += 1
            await self._attempt(
                url, request.body, request.headers, progress.attempts + made, fields
            )

        try:
            try:
                # Most messages go through at the first attempt, which needs none of
                # tenacity's machinery (about 30 µs a message).
                await attempt()
            except TransientFailure as failure:
                if not more_here(made):
                    raise
                self._log_retry(progress.attempts + made, failure, policy.interval_s, fields)
                await asyncio.sleep(policy.interval_s)
                retrying = AsyncRetrying(
                    stop=lambda _: not more_here(made),
                    wait=wait_fixed(policy.interval_s),
                    retry=retry_if_exception_type(TransientFailure),
                    reraise=True,
                    before_sleep=lambda state: self._log_retry(
                        progress.attempts + made,
                        state.outcome.exception() if state.outcome else None,
                        state.next_action.sleep if state.next_action else 0.0,
                        fields,
                    ),
                )
                async for retry in retrying:
                    with retry:
                        await attempt()
        except PermanentFailure as failure:
            await self._give_up(
                delivery,
                record,
                fields,
                progress.after(made, first_at=first_at, last_at=time.time(), error=str(failure)),
                outcome="rejected",
                reason=failure.outcome.reason,
                cpa_id=recipient.cpa_id,
                errors=failure.outcome.reply.errors if failure.outcome.reply else (),
            )
            return
        except TransientFailure as failure:
            after = progress.after(made, first_at=first_at, last_at=time.time(), error=str(failure))
            step = policy.after_failure(after, accepted_at=record.accepted_at, now=time.time())
            if isinstance(step, GiveUp):
                await self._give_up(
                    delivery,
                    record,
                    fields,
                    after,
                    outcome=step.outcome,
                    reason=step.reason,
                    cpa_id=recipient.cpa_id,
                )
            else:
                await self._wait_in_queue(delivery, after, step, fields)
            return
        await delivery.ack()

    async def _attempt(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        attempt: int,
        fields: dict[str, str],
    ) -> None:
        started = time.perf_counter()
        send_headers = {**headers, "Ssp-TraceID": str(uuid.uuid4()), "Mhs-Attempt": str(attempt)}
        try:
            async with self.session.post(url, data=body, headers=send_headers) as response:
                reply = await response.read()
                outcome = judge_response(response.status, response.content_type, reply)
                status: int | None = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            outcome = Outcome("transient", f"{type(error).__name__}: {error}".rstrip(": "))
            status = None
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        self.log.info(
            Event.DELIVERY_ATTEMPT,
            attempt=attempt,
            outcome=outcome.verdict,
            status=status,
            reason=outcome.reason,
            duration_ms=duration_ms,
            **fields,
        )
        if outcome.verdict == "transient":
            raise TransientFailure(outcome)
        if outcome.verdict == "permanent":
            raise PermanentFailure(outcome)
        self.log.info(
            Event.DELIVERY_DELIVERED,
            attempt=attempt,
            outcome="delivered",
            status=status,
            duration_ms=duration_ms,
            **fields,
        )

    def _log_retry(
        self, attempt: int, error: BaseException | None, wait_s: float, fields: dict[str, str]
    ) -> None:
        self.log.info(
            Event.DELIVERY_RETRY_SCHEDULED,
            attempt=attempt,
            outcome="retry",
            reason=str(error) if error else None,
            wait_ms=round(wait_s * 1000, 3),
            queue=None,
            **fields,
        )

    async def _wait_in_queue(
        self, delivery: Delivery, progress: Progress, step: Retry, fields: dict[str, str]
    ) -> None:
        """Long waits happen in a delay queue, not in a worker: publish a copy that carries
        the progress, confirmed, then let go of this one."""
        try:
            queue = await declare_delay(self.broker, self.settings, step.delay_ms)
            await self.broker.publish(queue, waiting(delivery, progress))
        except BrokerError as error:
            self.log.warning(Event.DELIVERY_REQUEUED, reason=str(error), **fields)
            await delivery.reject(requeue=True)
            return
        self.log.info(
            Event.DELIVERY_RETRY_SCHEDULED,
            attempt=progress.attempts,
            outcome="retry",
            reason=progress.last_error,
            wait_ms=step.delay_ms,
            queue=queue,
            **fields,
        )
        await delivery.ack()

    async def _give_up(
        self,
        delivery: Delivery,
        record: OutboundRecord,
        fields: dict[str, str],
        progress: Progress,
        *,
        outcome: str,
        reason: str,
        cpa_id: str,
        errors: Sequence[ErrorDetail] = (),
    ) -> None:
        if outcome == "rejected":
            self.log.info(
                Event.DELIVERY_REJECTED,
                outcome=outcome,
                reason=reason,
                attempt=progress.attempts,
                **fields,
            )
        entry = dead_letter(
            delivery, outcome=outcome, reason=reason, progress=progress,
            accepted_at=record.accepted_at,
        )  # fmt: skip
        notice = failure_notice(
            record, cpa_id=cpa_id, outcome=outcome, reason=reason, errors=errors
        )
        sender_queue = self.settings.inbound_queue(record.from_asid)
        try:
            await self.broker.publish(self.settings.dead_letter_queue, entry)
            await self.broker.declare_queue(sender_queue)
            await self.broker.publish(sender_queue, notice)
        except BrokerError as error:
            # Not recorded anywhere yet: hand the message back so a later attempt can.
            self.log.warning(Event.DELIVERY_REQUEUED, reason=str(error), **fields)
            await delivery.reject(requeue=True)
            return
        self.log.info(
            Event.DELIVERY_DEAD_LETTERED,
            outcome=outcome,
            reason=reason,
            attempt=progress.attempts,
            **fields,
        )
        self.log.info(Event.DELIVERY_SENDER_NOTIFIED, outcome=outcome, queue=sender_queue, **fields)
        await delivery.ack()

    async def _dead_letter_unreadable(self, delivery: Delivery, problem: str) -> None:
        try:
            await self.broker.publish(
                self.settings.dead_letter_queue,
                dead_letter(delivery, outcome="unreadable", reason=problem),
            )
        except BrokerError:
            await delivery.reject(requeue=True)
            return
        self.log.warning(
            Event.DELIVERY_DEAD_LETTERED,
            outcome="unreadable",
            reason=problem[:500],
            message_id=delivery.message_id,
        )
        await delivery.ack()


WORKER = web.AppKey("worker", DeliveryWorker)


def create_worker_app(
    settings: Settings, directory: Directory, *, broker: Broker | None = None
) -> web.Application:
    """A delivery worker: consumes the outbound queue; serves health on ``worker_port``."""
    app = create_role_app(ROLE, settings, directory, broker, get_logger(ROLE))
    app.cleanup_ctx.append(_worker_ctx)
    return app


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with client_session(
        settings,
        total_s=settings.delivery_timeout_s,
        limit=settings.prefetch * 2,
        auto_decompress=True,
    ) as session:
        worker = DeliveryWorker(settings, app[DIRECTORY], app[BROKER], session, app[LOG])
        app[WORKER] = worker
        app[READINESS].append(worker.readiness)

        def in_flight() -> int:
            return worker.in_flight

        app[METRICS].track_in_flight(in_flight)
        await worker.start()
        yield
        await worker.stop()
        app[METRICS].untrack_in_flight(in_flight)
