"""The state store contract every implementation passes (``tests/state``).

Keys live under the deployment's prefix and every key has a TTL, so the store never grows
without bound. Record kinds, each with its own operations (a name holds one kind only;
callers keep kinds apart by naming them ``dedup:...``, ``status:...``, ``waiting:...``):

- the *claim*: a key held ``pending`` by one owner for a short TTL, until that owner
  settles it ``done`` (with a value, kept for a longer TTL) or releases it. A claim that
  was never settled or released (its owner crashed) expires with its pending TTL, so
  nothing stays blocked for ever. A claim can read one value in the same step, and many
  claims settle in one round trip;
- the *value*: bytes under a name, put with a TTL, read and deleted;
- the *list*: bytes appended under many names in one call (one round trip for a whole
  batch), capped in length, its TTL set again by every append, read in order.

To add a kind: an abstract method here, both implementations, and a case in
``tests/state/test_contract.py`` that both pass.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

ClaimState = Literal["pending", "done"]


def ttl_ms(seconds: float) -> int:
    """A TTL in whole milliseconds (at least 1); ValueError unless finite and above 0."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a TTL must be a finite number of seconds above 0, not {seconds}")
    return max(1, round(seconds * 1000))


# How long a role waits for Redis to answer at start before giving up.
START_TIMEOUT_S = 10.0


class StateError(Exception):
    """The store did not answer (unreachable, timed out): the state is unknown."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What ``claim`` found or made.

    ``won``: the caller now holds the key, pending. Otherwise ``state`` says what another
    owner made of it, and ``value`` is what a ``done`` key was settled with.
    """

    won: bool
    state: ClaimState
    value: bytes = b""
    read: bytes | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """One pending claim to make ``done`` (see ``StateStore.settle``)."""

    name: str
    owner: str
    ttl_s: float
    value: bytes = b""


class StateStore(abc.ABC):
    """Records shared by the replicas of a deployment, named ``<prefix><name>``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def key(self, name: str) -> str:
        """The stored key for ``name``: the deployment's prefix keeps deployments apart."""
        return self.prefix + name

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect (StateError if the store cannot be reached within the start timeout)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close connections; records stay (in the in-process store, until the process ends)."""

    @property
    @abc.abstractmethod
    def available(self) -> bool:
        """False while the store is known not to answer (readiness reports it)."""

    @abc.abstractmethod
    async def claim(self, name: str, *, owner: str, ttl_s: float, read: str | None = None) -> Claim:
        """Hold ``name`` as pending for ``owner`` for ``ttl_s`` if nobody holds it.

        Atomic across every replica. Claiming again with the same owner while pending wins
        again (so a retried call is harmless) without extending the TTL. With ``read``, the
        claim also carries the value under that name (``Claim.read``; None if there is
        none), read in the same step: one round trip, not two.
        """

    async def settle(self, name: str, *, owner: str, ttl_s: float, value: bytes = b"") -> bool:
        """Make ``owner``'s pending claim ``done`` with ``value`` for ``ttl_s``.

        Also done if the claim had already expired and nobody took the key since, and
        settling again as the same owner succeeds again. False if another owner holds or
        settled it meanwhile (nothing is changed).
        """
        [settled] = await self.settle_many([Settlement(name, owner, ttl_s, value)])
        return settled

    @abc.abstractmethod
    async def settle_many(self, settlements: Sequence[Settlement]) -> list[bool]:
        """``settle`` each of ``settlements`` in one round trip: whether each was settled,
        in order. Each is settled or not on its own, as ``settle`` would."""

    @abc.abstractmethod
    async def release(self, name: str, *, owner: str) -> bool:
        """Drop ``owner``'s pending claim so the next ``claim`` wins; False if not held by
        ``owner`` (settled, expired or someone else's)."""

    @abc.abstractmethod
    async def remaining_s(self, name: str) -> float | None:
        """Seconds until ``name`` expires; None if there is no such key."""

    @abc.abstractmethod
    async def put(self, name: str, value: bytes, *, ttl_s: float) -> None:
        """Store ``value`` under ``name`` for ``ttl_s``, replacing any value there."""

    @abc.abstractmethod
    async def get(self, name: str) -> bytes | None:
        """The value under ``name``; None if there is none (never put, deleted or expired)."""

    @abc.abstractmethod
    async def delete(self, name: str) -> bool:
        """Remove the value under ``name``; False if there was none."""

    @abc.abstractmethod
    async def append(self, batch: Mapping[str, Sequence[bytes]], *, ttl_s: float, cap: int) -> None:
        """Add each name's items to the end of its list, in one round trip for the batch.

        A list keeps its first ``cap`` items (later ones are not added), and each append
        sets the list's TTL to ``ttl_s`` again: a list lives until ``ttl_s`` after its last
        append. A retried call may add its items twice.
        """

    @abc.abstractmethod
    async def read_list(self, name: str) -> list[bytes]:
        """The items of the list ``name`` in the order they were appended (empty if none)."""
