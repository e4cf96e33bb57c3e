"""Carrying out the retry policy's decision about a delivery: acknowledge it, let a copy
wait in a delay queue, or dead-letter it and tell its sender. A delivery is acknowledged
only once what replaces it is confirmed; if that fails it goes back to its queue."""

from __future__ import annotations

from typing import Any

from mhs.broker import Broker, BrokerError, Delivery
from mhs.messages.copies import dead_letter, waiting
from mhs.messages.outcomes import DeliveryOutcome, outcome_message
from mhs.messages.queues import declare_delay
from mhs.messages.records import OutboundRecord
from mhs.observe.events import Event
from mhs.reliability.headers import REPLY_TO, Progress
from mhs.reliability.notices import failure_notice
from mhs.reliability.policy import Delivered, GiveUp, Retry, Settlement
from mhs.settings import Settings


class Settler:
    """Settles deliveries of the outbound queue as the policy decided."""

    def __init__(self, settings: Settings, broker: Broker, log: Any) -> None:
        self.settings = settings
        self.broker = broker
        self.log = log

    async def carry_out(
        self,
        decision: Settlement,
        delivery: Delivery,
        record: OutboundRecord,
        progress: Progress,
        fields: dict[str, str],
        *,
        cpa_id: str,
    ) -> None:
        """Settle ``delivery`` as ``decision`` says (``progress`` counts every attempt;
        ``fields`` are the record's log fields)."""
        if isinstance(decision, Delivered):
            await delivery.ack()
            await self._report(delivery, record, decision, fields)
        elif isinstance(decision, GiveUp):
            if await self._give_up(
                delivery, record, progress, decision, cpa_id=cpa_id, fields=fields
            ):
                await self._report(delivery, record, decision, fields)
        else:
            # A retry the worker does not make itself (its wait is long, or the time for
            # one more in the worker has just run out) waits in a delay queue.
            await self._wait_in_queue(delivery, progress, decision, fields)

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
        progress: Progress,
        decision: GiveUp,
        *,
        cpa_id: str,
        fields: dict[str, str],
    ) -> bool:
        """Dead-letter the message and notify its sender; False if it went back instead."""
        outcome, reason = decision.outcome, decision.reason
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
            record, cpa_id=cpa_id, outcome=outcome, reason=reason, errors=decision.errors
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
            return False
        self.log.info(
            Event.DELIVERY_DEAD_LETTERED,
            outcome=outcome,
            reason=reason,
            attempt=progress.attempts,
            **fields,
        )
        self.log.info(Event.DELIVERY_SENDER_NOTIFIED, outcome=outcome, queue=sender_queue, **fields)
        await delivery.ack()
        return True

    async def _report(
        self,
        delivery: Delivery,
        record: OutboundRecord,
        decision: Delivered | GiveUp,
        fields: dict[str, str],
    ) -> None:
        """Spine acceptance: tell the outbound replica holding the request how its delivery
        ended. The message is settled already, so a failure here is only logged: the held
        request then answers 202 pending, and the sender's notice still tells a give-up."""
        reply_to = delivery.headers.get(REPLY_TO)
        if not isinstance(reply_to, str):
            return
        outcome = DeliveryOutcome.of(decision)
        try:
            await self.broker.publish(reply_to, outcome_message(record, outcome))
        except BrokerError as error:
            self.log.warning(
                Event.DELIVERY_OUTCOME_REPORTED,
                outcome="failed",
                queue=reply_to,
                reason=str(error),
                **fields,
            )
            return
        self.log.info(Event.DELIVERY_OUTCOME_REPORTED, outcome="sent", queue=reply_to, **fields)

    async def dead_letter_unreadable(self, delivery: Delivery, problem: str) -> None:
        """A message that is not an outbound record: to the dead-letter queue as it is."""
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
