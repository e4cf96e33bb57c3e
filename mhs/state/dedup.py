"""Duplicate elimination at the inbound MHS: each message id delivered once, across
replicas and crashes, and every copy that might be a second one says so.

A message id is claimed *pending* in the state store before the message is published to
its recipient's queue, settled *done* with the Acknowledgment answered (kept for the
interaction's persist duration) once the publish is confirmed, and released if the
publish certainly failed. A copy that finds it done gets that same Acknowledgment again
(ebMS 2.0) and is not delivered; a copy that finds it pending (another replica is
publishing it, or one crashed doing so) is told to come back later, never silently dropped.

A publish whose confirm was lost (the broker may have queued it) leaves the id
*uncertain*: a marker kept for the persist duration, written before the claim is released.
Every later copy of that id that is delivered is a ``First`` with ``possible_duplicate``
set, and goes out flagged, so the recipient's system can drop it. If the store does not
answer at that moment either, the marker is not written and the claim expires with its
pending TTL: a later copy then goes out unflagged. The outbound MHS marks an id the same
way (``mark_uncertain``) when its own publish goes unconfirmed: an inbound MHS sharing its
state store then flags every copy of that id it delivers.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass

from mhs.state import StateError, StateStore


def _uncertain(message_id: str) -> str:
    return f"uncertain:{message_id}"


async def mark_uncertain(store: StateStore, message_id: str, *, keep_s: float) -> None:
    """A publish of ``message_id`` may or may not have landed: every copy of it that an
    inbound MHS on ``store`` delivers for ``keep_s`` is flagged (StateError: not marked)."""
    await store.put(_uncertain(message_id), b"1", ttl_s=keep_s)


@dataclass(frozen=True, slots=True)
class First:
    """This copy holds the claim: publish it, then call ``delivered`` or ``failed``."""

    message_id: str
    owner: str
    possible_duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Seen:
    """Delivered before: answer ``acknowledgment`` (empty: no Acknowledgment was asked for)."""

    acknowledgment: bytes


@dataclass(frozen=True, slots=True)
class InProgress:
    """Another replica holds the claim and has not finished: the sender should retry."""


class DuplicateElimination:
    """Claims on message ids in a state store shared by every inbound replica."""

    def __init__(self, store: StateStore, *, pending_ttl_s: float, replica: str = "") -> None:
        self.store = store
        self.pending_ttl_s = pending_ttl_s
        self._replica = replica or uuid.uuid4().hex[:8]

    @staticmethod
    def _name(message_id: str) -> str:
        return f"dedup:{message_id}"

    async def check(self, message_id: str) -> First | Seen | InProgress:
        """Claim ``message_id`` or find who has it (StateError if the store is down)."""
        owner = f"{self._replica}:{uuid.uuid4().hex}"
        claim = await self.store.claim(
            self._name(message_id), owner=owner, ttl_s=self.pending_ttl_s
        )
        if claim.won:
            # Read after winning: a copy whose confirm was lost marks the id before it
            # releases the claim, so the marker is there for whoever wins next.
            try:
                marked = await self._marked(message_id)
            except StateError:
                with contextlib.suppress(StateError):
                    await self.store.release(self._name(message_id), owner=owner)
                raise
            return First(message_id, owner, possible_duplicate=marked)
        if claim.state == "done":
            return Seen(claim.value)
        return InProgress()

    async def delivered(self, first: First, *, keep_s: float, acknowledgment: bytes) -> bool:
        """Record the message as delivered for ``keep_s``; False if another copy took the
        claim meanwhile (this one outlived its pending TTL)."""
        return await self.store.settle(
            self._name(first.message_id), owner=first.owner, ttl_s=keep_s, value=acknowledgment
        )

    async def failed(self, first: First) -> None:
        """Give the claim up: the message was not delivered, so the sender's next copy is."""
        await self.store.release(self._name(first.message_id), owner=first.owner)

    async def uncertain(self, message_id: str, first: First | None, *, keep_s: float) -> None:
        """The publish of ``message_id`` may or may not have landed: mark the id for
        ``keep_s`` so later copies go out flagged, then give the claim (if any) up
        (StateError if the store does not answer: nothing is marked). A claim that cannot
        be given up once the mark is made expires with its pending TTL."""
        await mark_uncertain(self.store, message_id, keep_s=keep_s)
        if first is not None:
            with contextlib.suppress(StateError):
                await self.failed(first)

    async def possible_duplicate(self, message_id: str) -> bool:
        """For a copy delivered without a claim (no duplicate elimination asked for):
        whether an earlier publish of the id may have landed. True if the store cannot say."""
        try:
            return await self._marked(message_id)
        except StateError:
            return True

    async def _marked(self, message_id: str) -> bool:
        """Whether an earlier publish of ``message_id`` may have landed (StateError if the
        store does not answer)."""
        return await self.store.get(_uncertain(message_id)) is not None
