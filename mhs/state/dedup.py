"""Duplicate elimination at the inbound MHS: each message id delivered once, across
replicas and crashes.

A message id is claimed *pending* in the state store before the message is published to
its recipient's queue, settled *done* with the Acknowledgment answered (kept for the
interaction's persist duration) once the publish is confirmed, and released if the
publish fails. A copy that finds it done gets that same Acknowledgment again (ebMS 2.0)
and is not delivered; a copy that finds it pending (another replica is publishing it, or
one crashed doing so) is told to come back later, never silently dropped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from mhs.state import StateStore


@dataclass(frozen=True, slots=True)
class First:
    """This copy holds the claim: publish it, then call ``delivered`` or ``failed``."""

    message_id: str
    owner: str


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
            return First(message_id, owner)
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
