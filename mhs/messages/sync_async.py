"""wait-for-response (the NHS adaptor's sync-async): what the outbound and inbound MHSs agree.

An outbound replica holding a request registers ``waiting:<MESSAGE ID>`` -> its reply queue
in the state store before it sends the message; the inbound MHS, receiving a reply whose
RefToMessageId is that id, publishes the reply to that queue. The timings below keep a
reply from being stranded when a replica dies with requests held (see
mhs.roles.outbound.replies).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

# A registration outlives the longest wait by this much, so a late lookup still finds it.
REGISTRATION_MARGIN_S = 5.0
# A dead replica's reply queue lasts until every reply sent to it has expired out of it.
QUEUE_EXPIRY_MARGIN_S = 30.0
MIN_QUEUE_EXPIRY_S = 60.0


def waiting_name(message_id: str) -> str:
    """The state store value naming the reply queue of the replica holding ``message_id``."""
    return f"waiting:{message_id.upper()}"


@dataclass(frozen=True, slots=True)
class ReplyTimings:
    """How long a request is held, and how long the parts that route its reply last."""

    wait_s: float

    @property
    def registration_s(self) -> float:
        """TTL of ``waiting:<id>``: a replica that dies leaves it this long at most."""
        return self.wait_s + REGISTRATION_MARGIN_S

    @property
    def reply_ttl_s(self) -> float:
        """How long a reply may sit in a reply queue before it moves on to the unclaimed
        queue (and from there to the instance's own queue): a held request waits no longer,
        and a live replica takes its replies at once."""
        return self.wait_s

    @property
    def queue_expiry_s(self) -> float:
        """A reply queue goes once unused this long: after the last registration pointing
        at it has expired, and every reply sent meanwhile has moved on."""
        return max(
            MIN_QUEUE_EXPIRY_S, self.registration_s + self.reply_ttl_s + QUEUE_EXPIRY_MARGIN_S
        )


def reply_payload(body: bytes) -> str | None:
    """The HL7 payload of a reply as the inbound MHS queues it (``{"ebXML", "payload",
    "attachments"}``); None if the body is not that."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    payload = message.get("payload") if isinstance(message, dict) else None
    return payload if isinstance(payload, str) else None
