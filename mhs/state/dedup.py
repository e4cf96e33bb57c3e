"""Duplicate elimination at the inbound MHS: each message id delivered once, across
replicas and crashes, and every copy that might be a second one says so.

A message id is claimed *pending* in the state store before the message is published to
its recipient's queue (the claim reads the id's *uncertain* mark in the same round trip),
settled *done* with the Acknowledgment answered (kept for the interaction's persist
duration) once the publish is confirmed, and released if the publish certainly failed.
Settling is written behind the answer (``settle_behind``): many messages' settlements go
in one store round trip, and until its settlement is written this replica answers a copy
of the id with the same Acknowledgment itself. A replica that stops before writing them
leaves those claims pending: their copies are told to come back later until the pending
TTL passes, and are then delivered again, as a crash between publishing and settling
always allowed. A copy that finds it done gets that same Acknowledgment again
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

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from mhs.state import Settlement, StateError, StateStore
from mhs.state.base import ttl_ms
from mhs.tasks import stop_task

NOT_SETTLED = "the pending claim expired and another copy took it"
# How long settlements gather before they are written: one store call per this long at most.
SETTLE_LINGER_S = 0.01


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

    def __init__(
        self,
        store: StateStore,
        *,
        pending_ttl_s: float,
        replica: str = "",
        linger_s: float = SETTLE_LINGER_S,
    ) -> None:
        self.store = store
        self.pending_ttl_s = pending_ttl_s
        self._linger_s = linger_s
        # Owners are this replica's id and a serial: unique across replicas and restarts
        # without a random number per message.
        self._replica = replica or uuid.uuid4().hex
        self._serial = itertools.count(1)
        # Settlements waiting to be written and being written, with what to call if one
        # fails, by message id (a copy meanwhile gets the Acknowledgment they hold).
        self._unwritten: dict[str, tuple[Settlement, Callable[[str], None]]] = {}
        self._in_flight: dict[str, tuple[Settlement, Callable[[str], None]]] = {}
        self._writing: asyncio.Task[None] | None = None

    @staticmethod
    def _name(message_id: str) -> str:
        return f"dedup:{message_id}"

    async def check(self, message_id: str) -> First | Seen | InProgress:
        """Claim ``message_id`` or find who has it (StateError if the store is down)."""
        unwritten = self._unwritten.get(message_id) or self._in_flight.get(message_id)
        if unwritten is not None:
            return Seen(unwritten[0].value)
        owner = f"{self._replica}:{next(self._serial)}"
        # The uncertain mark is read in the claim's own step: a copy whose confirm was lost
        # marks the id before it releases the claim, so whoever wins next sees the mark.
        claim = await self.store.claim(
            self._name(message_id), owner=owner, ttl_s=self.pending_ttl_s,
            read=_uncertain(message_id),
        )  # fmt: skip
        if claim.won:
            return First(message_id, owner, possible_duplicate=claim.read is not None)
        if claim.state == "done":
            return Seen(claim.value)
        return InProgress()

    def settle_behind(
        self,
        first: First,
        *,
        keep_s: float,
        acknowledgment: bytes,
        not_settled: Callable[[str], None],
    ) -> None:
        """Record the message as delivered for ``keep_s``, written behind: with those that
        gather within ``SETTLE_LINGER_S``, in one store call. ``not_settled`` is called with
        the reason if the store fails or another copy took the claim meanwhile (this one
        outlived its pending TTL)."""
        ttl_ms(keep_s)  # a bad TTL fails this message now, not the batch it would join
        settlement = Settlement(self._name(first.message_id), first.owner, keep_s, acknowledgment)
        self._unwritten[first.message_id] = (settlement, not_settled)
        if self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._unwritten:
                # Let a busy replica's settlements gather: fewer, larger store calls.
                await asyncio.sleep(self._linger_s)
                batch = self._in_flight = self._unwritten
                self._unwritten = {}
                try:
                    settled = await self.store.settle_many([s for s, _ in batch.values()])
                except Exception as error:  # each message hears why; the writer goes on
                    settled = [False] * len(batch)
                    reason = str(error) if isinstance(error, StateError) else repr(error)
                else:
                    reason = NOT_SETTLED
                for (_, not_settled), done in zip(batch.values(), settled, strict=True):
                    if not done:
                        not_settled(reason)
        finally:
            self._in_flight = {}
            self._writing = None

    async def drain(self, *, within_s: float) -> int:
        """Write every settlement not yet written (as a role stops), within ``within_s``;
        how many were still unwritten then (given up)."""
        if self._writing is not None:
            await asyncio.wait({self._writing}, timeout=within_s)
        left = len(self._unwritten) + len(self._in_flight)
        await stop_task(self._writing, within_s=1.0)
        return left

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
            return await self.store.get(_uncertain(message_id)) is not None
        except StateError:
            return True
