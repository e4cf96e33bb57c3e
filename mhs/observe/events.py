"""Lifecycle event names: the log contract documented in docs/log-schema.md."""

from __future__ import annotations

from enum import StrEnum


class Event(StrEnum):
    """Every event a role logs. Dashboards key on these values; never rename one."""

    ROLE_STARTED = "role.started"
    ROLE_STOPPING = "role.stopping"
    BROKER_CONNECTED = "broker.connected"
    BROKER_HANDLER_FAILED = "broker.handler_failed"
    LIBRARY_LOG = "library.log"
    STATE_CONNECTED = "state.connected"
    STATUS_WRITE_FAILED = "status.write_failed"

    MESSAGE_REFUSED = "message.refused"
    MESSAGE_ACCEPTED = "message.accepted"
    MESSAGE_RECEIVER_MISMATCH = "message.receiver_mismatch"
    MESSAGE_QUEUED = "message.queued"
    MESSAGE_PUBLISH_UNCONFIRMED = "message.publish_unconfirmed"
    MESSAGE_AWAITING_REPLY = "message.awaiting_reply"
    MESSAGE_REPLIED = "message.replied"
    MESSAGE_REPLY_TIMED_OUT = "message.reply_timed_out"
    MESSAGE_REPLY_FORWARDED = "message.reply_forwarded"
    MESSAGE_OUTCOME_ANSWERED = "message.outcome_answered"

    DELIVERY_ATTEMPT = "delivery.attempt"
    DELIVERY_RETRY_SCHEDULED = "delivery.retry_scheduled"
    DELIVERY_DELIVERED = "delivery.delivered_to_proxy"
    DELIVERY_REJECTED = "delivery.rejected"
    DELIVERY_DEAD_LETTERED = "delivery.dead_lettered"
    DELIVERY_SENDER_NOTIFIED = "delivery.sender_notified"
    DELIVERY_REQUEUED = "delivery.requeued"
    DELIVERY_RESUMED = "delivery.resumed"
    DELIVERY_OUTCOME_REPORTED = "delivery.outcome_reported"
    WORKER_DRAINED = "worker.drained"

    PROXY_REFUSED = "proxy.refused"
    PROXY_FAULT_INJECTED = "proxy.fault_injected"
    PROXY_FORWARDED = "proxy.forwarded"
    PROXY_FAULTS_CHANGED = "proxy.faults_changed"
    PROXY_ANSWERED_AS_SPINE = "proxy.answered_as_spine"
    PROXY_REPLY_SENT = "proxy.reply_sent"

    INBOUND_RECEIVED = "inbound.received"
    INBOUND_REFUSED = "inbound.refused"
    INBOUND_NACKED = "inbound.nacked"
    INBOUND_DUPLICATE = "inbound.duplicate_dropped"
    INBOUND_DUPLICATE_IN_PROGRESS = "inbound.duplicate_in_progress"
    INBOUND_CLAIM_NOT_SETTLED = "inbound.claim_not_settled"
    INBOUND_PUBLISH_UNCONFIRMED = "inbound.publish_unconfirmed"
    INBOUND_POSSIBLE_DUPLICATE = "inbound.possible_duplicate_flagged"
    INBOUND_DELIVERED = "inbound.delivered_to_instance"
    INBOUND_ACKNOWLEDGED = "inbound.acknowledged"
    INBOUND_SIGNAL_RECEIVED = "inbound.signal_received"
    INBOUND_REPLY_REROUTED = "inbound.reply_rerouted"

    GPCONNECT_REFUSED = "gpconnect.refused"
    GPCONNECT_FORWARDED = "gpconnect.forwarded"
    PROVIDER_REFUSED = "provider.refused"
    PROVIDER_ANSWERED = "provider.answered"
    PROVIDER_AUDIT_FAILED = "provider.audit_failed"
    SDS_ANSWERED = "sds.answered"
    SDS_REFUSED = "sds.refused"
