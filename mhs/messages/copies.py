"""Copies of a queued message published on: to the next queue unchanged but for our
headers, to a delay queue with its progress, or to the dead-letter queue with its reason."""

from __future__ import annotations

import time
from collections.abc import Mapping

from mhs.broker import Delivery, HeaderValue, OutgoingMessage
from mhs.reliability.headers import (
    ACCEPTED_AT,
    DEAD_LETTERED_AT,
    OUTCOME,
    REASON,
    Progress,
    time_header,
)


def carried_headers(headers: Mapping[str, HeaderValue]) -> dict[str, HeaderValue]:
    """A received message's headers, fit to publish again: RabbitMQ writes its own
    (``x-death``, ``x-first-death-*``, ``x-delivery-count``) and they do not travel as text."""
    return {k: v for k, v in headers.items() if not k.startswith("x-") or k.startswith("x-mhs-")}


def onward(
    delivery: Delivery,
    headers: Mapping[str, HeaderValue],
    application_properties: Mapping[str, str] | None = None,
) -> OutgoingMessage:
    """``delivery`` published again unchanged but for ``headers`` (its id stays, so
    duplicate elimination downstream still recognises it); ``application_properties`` for
    an instance's queue's AMQP 1.0 readers."""
    return OutgoingMessage(
        body=delivery.body,
        message_id=delivery.message_id,
        correlation_id=delivery.correlation_id,
        headers=headers,
        content_type=delivery.content_type or "application/octet-stream",
        type=delivery.type,
        app_id=delivery.app_id,
        timestamp=delivery.timestamp,
        application_properties=application_properties,
    )


def waiting(delivery: Delivery, progress: Progress) -> OutgoingMessage:
    """The copy that waits in a delay queue, carrying its progress so far."""
    return onward(delivery, {**carried_headers(delivery.headers), **progress.headers()})


def dead_letter(
    delivery: Delivery,
    *,
    outcome: str,
    reason: str,
    progress: Progress | None = None,
    accepted_at: float | None = None,
) -> OutgoingMessage:
    """The dead-letter queue entry: the original body and headers, plus why it is there,
    its attempts, the last error and when things happened (epoch milliseconds)."""
    headers = carried_headers(delivery.headers)
    if progress is not None:
        headers.update(progress.headers())
    headers.update(
        {OUTCOME: outcome, REASON: reason[:500], DEAD_LETTERED_AT: time_header(time.time())}
    )
    if accepted_at is not None:
        headers[ACCEPTED_AT] = time_header(accepted_at)
    return onward(delivery, headers)
