"""Message status timelines: each message's lifecycle across every role, as one ordered list.

Every role logs its lifecycle as events (mhs.observe.events); mhs.observe.recorder turns the events
below into steps, one JSON record each, appended to the state store list
``status:<MESSAGE ID>``. This module says which events are steps and what a step keeps,
and turns the stored records back into a timeline: its steps in time order, the message's
parties and the state it has reached. Steps of Spine's reply to a message (an SCR query's
response) are logged under the message's id, so they are in its timeline too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from mhs.observe.events import Event

STEP_EVENTS: frozenset[str] = frozenset(
    {
        Event.MESSAGE_REFUSED,
        Event.MESSAGE_ACCEPTED,
        Event.MESSAGE_QUEUED,
        Event.MESSAGE_AWAITING_REPLY,
        Event.MESSAGE_REPLIED,
        Event.MESSAGE_REPLY_TIMED_OUT,
        Event.MESSAGE_REPLY_FORWARDED,
        Event.DELIVERY_ATTEMPT,
        Event.DELIVERY_RETRY_SCHEDULED,
        Event.DELIVERY_DELIVERED,
        Event.DELIVERY_REJECTED,
        Event.DELIVERY_DEAD_LETTERED,
        Event.DELIVERY_SENDER_NOTIFIED,
        Event.DELIVERY_REQUEUED,
        Event.DELIVERY_RESUMED,
        Event.PROXY_REFUSED,
        Event.PROXY_FAULT_INJECTED,
        Event.PROXY_FORWARDED,
        Event.PROXY_ANSWERED_AS_SPINE,
        Event.PROXY_REPLY_SENT,
        Event.INBOUND_RECEIVED,
        Event.INBOUND_REFUSED,
        Event.INBOUND_NACKED,
        Event.INBOUND_DUPLICATE,
        Event.INBOUND_DUPLICATE_IN_PROGRESS,
        Event.INBOUND_CLAIM_NOT_SETTLED,
        Event.INBOUND_DELIVERED,
        Event.INBOUND_ACKNOWLEDGED,
        Event.INBOUND_SIGNAL_RECEIVED,
        Event.INBOUND_REPLY_REROUTED,
    }
)
# Who the message is between: shown once for the timeline, not per step.
IDENTITY = ("correlation_id", "interaction_id", "from_asid", "to_asid", "from_ods", "to_ods")
# What a step keeps besides its time, role and event (the log schema's names).
DETAIL = (
    "attempt",
    "outcome",
    "status",
    "reason",
    "detail",
    "queue",
    "wait_ms",
    "delay_ms",
    "duration_ms",
    "endpoint",
    "kind",
    "fault_id",
    "code",
    "trace_id",
    "mhs",
    "inbound_message_id",
    "reply_message_id",
)
KEPT = (*IDENTITY, *DETAIL)
_STORED = frozenset({"at", "role", "event", *KEPT})
# A step's own interaction is kept on every step: Spine's reply steps have the reply's.
_STEP = (*DETAIL, "interaction_id")
MAX_STEPS = 200

# The state a step puts the message in, and how far along that is: a step moves the state
# only forward (roles log out of order: the proxy logs a forward once the inbound MHS has
# answered it). Final states are ranked last; a new life for the same message id (the
# sender sends it again, or `mhs dlq replay`) starts over from them.
_FINAL = 90
_RESTARTS = frozenset({Event.MESSAGE_ACCEPTED, Event.DELIVERY_ATTEMPT, Event.DELIVERY_RESUMED})
_STATES: dict[str, tuple[str, int]] = {
    Event.MESSAGE_ACCEPTED: ("accepted", 10),
    Event.MESSAGE_QUEUED: ("queued", 20),
    Event.MESSAGE_AWAITING_REPLY: ("queued", 20),
    Event.DELIVERY_ATTEMPT: ("sending", 30),
    Event.DELIVERY_RESUMED: ("sending", 30),
    Event.DELIVERY_RETRY_SCHEDULED: ("waiting-to-retry", 30),
    Event.DELIVERY_DELIVERED: ("sent", 40),
    Event.PROXY_FORWARDED: ("sent", 40),
    Event.INBOUND_RECEIVED: ("received", 50),
    Event.INBOUND_DELIVERED: ("delivered", 60),
    Event.PROXY_ANSWERED_AS_SPINE: ("delivered", 60),
    Event.MESSAGE_REPLIED: ("replied", 70),
    Event.MESSAGE_REPLY_FORWARDED: ("replied", 70),
    Event.DELIVERY_REJECTED: ("rejected", _FINAL + 10),
    Event.DELIVERY_DEAD_LETTERED: ("dead-lettered", _FINAL + 10),
}
_REFUSED = ("refused", _FINAL)


def status_name(message_id: str) -> str:
    """The state store list holding ``message_id``'s steps."""
    return f"status:{message_id.upper()}"


def encode_step(
    at: float, event_name: str, event: Mapping[str, Any], *, identity: bool = True
) -> bytes:
    """One step as stored: when it happened (``at``, epoch seconds), the role, the event and
    the fields a timeline shows; with ``identity``, who the message is between as well (a
    recorder writes that once per message in each batch: steps are kept small, as every
    byte of them is held for the TTL)."""
    record: dict[str, Any] = {"at": at, "role": event.get("role"), "event": event_name}
    for key in KEPT if identity else _STEP:
        value = event.get(key)
        if value is not None:
            record[key] = value
    # A copy of exactly its size: orjson's own result sits in a larger block, which costs
    # several times the encoding itself when kept for long (as steps are), not freed at once.
    return memoryview(orjson.dumps(record, default=str)).tobytes()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_reply(step: Mapping[str, Any], message_id: str) -> bool:
    """A step about Spine's reply to the message rather than the message itself."""
    own = step.get("inbound_message_id")
    return (isinstance(own, str) and own.upper() != message_id) or step["event"] in (
        Event.PROXY_REPLY_SENT,
        Event.MESSAGE_REPLY_FORWARDED,
    )


@dataclass(frozen=True, slots=True)
class Timeline:
    """A message's steps in time order, who it is between, and the state it has reached."""

    message_id: str
    identity: dict[str, Any]
    state: str
    steps: tuple[dict[str, Any], ...]
    truncated: bool

    def visible_to(self, asid: str) -> bool:
        """Only the message's sender and recipient may see it."""
        return asid in (self.identity.get("from_asid"), self.identity.get("to_asid"))

    def public(self) -> dict[str, Any]:
        """The timeline as the outbound MHS answers it (GET /messages/{message_id})."""
        steps = []
        for step in self.steps:
            shown: dict[str, Any] = {"at": _iso(step["at"]), "role": step.get("role")}
            shown["event"] = step["event"]
            shown.update((k, step[k]) for k in DETAIL if k in step)
            if step.get("interaction_id") not in (None, self.identity.get("interaction_id")):
                shown["interaction_id"] = step["interaction_id"]
            steps.append(shown)
        return {
            "message_id": self.message_id,
            **{key: self.identity.get(key) for key in IDENTITY},
            "state": self.state,
            "steps": steps,
            "truncated": self.truncated,
        }


def build_timeline(message_id: str, records: Iterable[bytes]) -> Timeline | None:
    """The timeline from a message's stored records; None if there are none.

    A record stored twice (a retried write) counts once. The message's parties come from
    the outbound MHS's ``message.accepted`` step (else the earliest step); steps naming
    other parties (another sender reusing the message id) are left out.
    """
    message_id = message_id.upper()
    raw = list(dict.fromkeys(records))
    steps = sorted((_decode(record) for record in raw), key=lambda step: step["at"])
    steps = [step for step in steps if step is not _BROKEN]
    for step in steps:
        for key in [key for key in step if key not in _STORED]:
            del step[key]
    if not steps:
        return None
    anchor = next((s for s in steps if s["event"] == Event.MESSAGE_ACCEPTED), steps[0])
    parties = {anchor.get("from_asid"), anchor.get("to_asid")} - {None}
    mine = [step for step in steps if _between(step, parties)]
    identity = {key: anchor[key] for key in IDENTITY if key in anchor}
    for step in mine:
        if _is_reply(step, message_id):
            continue
        for key in IDENTITY:
            if key not in identity and key in step:
                identity[key] = step[key]
    return Timeline(
        message_id=message_id,
        identity=identity,
        state=_state(mine, message_id),
        steps=tuple(mine),
        truncated=len(raw) >= MAX_STEPS,
    )


_BROKEN: dict[str, Any] = {"at": 0.0, "event": ""}


def _decode(record: bytes) -> dict[str, Any]:
    try:
        step = orjson.loads(record)
    except orjson.JSONDecodeError:
        return _BROKEN
    if (
        not isinstance(step, dict)
        or not isinstance(step.get("at"), int | float)
        or not isinstance(step.get("event"), str)
    ):
        return _BROKEN
    return step


def _between(step: Mapping[str, Any], parties: set[Any]) -> bool:
    if len(parties) < 2:
        return True
    return all(step.get(key) in parties for key in ("from_asid", "to_asid") if step.get(key))


def _state(steps: Iterable[Mapping[str, Any]], message_id: str) -> str:
    state, rank = "unknown", -1
    for step in steps:
        event = step["event"]
        if event == Event.MESSAGE_REFUSED:
            found: tuple[str, int] | None = _REFUSED
        elif event == Event.DELIVERY_DEAD_LETTERED:
            found = (str(step.get("outcome") or "dead-lettered"), _FINAL + 10)
        elif event == Event.INBOUND_DELIVERED and _is_reply(step, message_id):
            found = ("replied", 70)
        elif event == Event.INBOUND_RECEIVED and _is_reply(step, message_id):
            found = None
        else:
            found = _STATES.get(event)
        if found is None:
            continue
        if rank >= _FINAL and event in _RESTARTS:
            rank = -1
        if found[1] >= rank:
            state, rank = found
    return state
