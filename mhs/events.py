"""Lifecycle event names: the log contract documented in docs/log-schema.md."""

from __future__ import annotations

from enum import StrEnum


class Event(StrEnum):
    """Every event a role logs. Dashboards key on these values; never rename one."""

    ROLE_STARTED = "role.started"
    ROLE_STOPPING = "role.stopping"
    BROKER_CONNECTED = "broker.connected"

    MESSAGE_REFUSED = "message.refused"
    MESSAGE_ACCEPTED = "message.accepted"
    MESSAGE_QUEUED = "message.queued"

    DELIVERY_ATTEMPT = "delivery.attempt"
    DELIVERY_RETRY_SCHEDULED = "delivery.retry_scheduled"
    DELIVERY_DELIVERED = "delivery.delivered_to_proxy"
    DELIVERY_REJECTED = "delivery.rejected"
    DELIVERY_DEAD_LETTERED = "delivery.dead_lettered"
    DELIVERY_SENDER_NOTIFIED = "delivery.sender_notified"
    DELIVERY_REQUEUED = "delivery.requeued"

    PROXY_REFUSED = "proxy.refused"
    PROXY_FAULT_INJECTED = "proxy.fault_injected"
    PROXY_FORWARDED = "proxy.forwarded"
    PROXY_FAULTS_CHANGED = "proxy.faults_changed"

    INBOUND_RECEIVED = "inbound.received"
    INBOUND_REFUSED = "inbound.refused"
    INBOUND_NACKED = "inbound.nacked"
    INBOUND_DUPLICATE = "inbound.duplicate_dropped"
    INBOUND_DELIVERED = "inbound.delivered_to_instance"
    INBOUND_ACKNOWLEDGED = "inbound.acknowledged"
    INBOUND_SIGNAL_RECEIVED = "inbound.signal_received"
