"""The in-process state store: the embedded default for trying the product.

Records last as long as the process and are seen by that process only, so duplicate
elimination with it holds per inbound process, not across replicas or restarts.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from mhs.state.base import Claim, ClaimState, Settlement, StateStore, ttl_ms


@dataclass(slots=True)
class _Record:
    state: ClaimState
    owner: str
    value: bytes
    expires_at: float


# Values and lists are tuples of immutable things, which the garbage collector stops
# tracking: an hour of status timelines must not slow down every collection.
class _Value(NamedTuple):
    value: bytes
    expires_at: float


class _List(NamedTuple):
    items: tuple[bytes, ...]
    expires_at: float


class MemoryStateStore(StateStore):
    """Records in dicts, forgotten when their TTL passes (pruned as new records arrive)."""

    def __init__(self, prefix: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(prefix)
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._values: dict[str, _Value] = {}
        self._lists: dict[str, _List] = {}
        # (expiry, key): stale entries (a key settled, put or appended to again) are skipped
        # on pruning.
        self._expiry: list[tuple[float, str]] = []

    def __len__(self) -> int:
        self._prune(self._clock())
        return len(self._records) + len(self._values) + len(self._lists)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    @property
    def available(self) -> bool:
        return True

    async def claim(self, name: str, *, owner: str, ttl_s: float, read: str | None = None) -> Claim:
        ttl_ms(ttl_s)
        now = self._clock()
        self._prune(now)
        key = self.key(name)
        found = None if read is None else self._values.get(self.key(read))
        value = None if found is None else found.value
        record = self._records.get(key)
        if record is None:
            self._put(key, _Record("pending", owner, b"", now + ttl_s))
            return Claim(won=True, state="pending", read=value)
        if record.state == "pending" and record.owner == owner:
            return Claim(won=True, state="pending", read=value)
        return Claim(won=False, state=record.state, value=record.value, read=value)

    async def settle_many(self, settlements: Sequence[Settlement]) -> list[bool]:
        for settlement in settlements:
            ttl_ms(settlement.ttl_s)
        now = self._clock()
        self._prune(now)
        return [self._settle(settlement, now) for settlement in settlements]

    def _settle(self, settlement: Settlement, now: float) -> bool:
        key = self.key(settlement.name)
        record = self._records.get(key)
        if record is not None and record.owner != settlement.owner:
            return False
        expires_at = now + settlement.ttl_s
        self._put(key, _Record("done", settlement.owner, settlement.value, expires_at))
        return True

    async def release(self, name: str, *, owner: str) -> bool:
        self._prune(self._clock())
        key = self.key(name)
        record = self._records.get(key)
        if record is None or record.state != "pending" or record.owner != owner:
            return False
        del self._records[key]
        return True

    async def remaining_s(self, name: str) -> float | None:
        now = self._clock()
        self._prune(now)
        key = self.key(name)
        record = self._records.get(key) or self._values.get(key) or self._lists.get(key)
        return None if record is None else record.expires_at - now

    async def put(self, name: str, value: bytes, *, ttl_s: float) -> None:
        ttl_ms(ttl_s)
        now = self._clock()
        self._prune(now)
        key = self.key(name)
        self._values[key] = _Value(value, now + ttl_s)
        heapq.heappush(self._expiry, (now + ttl_s, key))

    async def get(self, name: str) -> bytes | None:
        self._prune(self._clock())
        value = self._values.get(self.key(name))
        return None if value is None else value.value

    async def delete(self, name: str) -> bool:
        self._prune(self._clock())
        return self._values.pop(self.key(name), None) is not None

    async def append(self, batch: Mapping[str, Sequence[bytes]], *, ttl_s: float, cap: int) -> None:
        ttl_ms(ttl_s)
        if cap < 1:
            raise ValueError(f"cap must be at least 1, not {cap}")
        now = self._clock()
        self._prune(now)
        expires_at = now + ttl_s
        lists, expiry = self._lists, self._expiry
        for name, items in batch.items():
            key = self.key(name)
            found = lists.get(key)
            kept = () if found is None else found.items
            if len(kept) < cap:
                kept += tuple(items[: cap - len(kept)])
            lists[key] = _List(kept, expires_at)
            heapq.heappush(expiry, (expires_at, key))

    async def read_list(self, name: str) -> list[bytes]:
        self._prune(self._clock())
        found = self._lists.get(self.key(name))
        return [] if found is None else list(found.items)

    def _put(self, key: str, record: _Record) -> None:
        self._records[key] = record
        heapq.heappush(self._expiry, (record.expires_at, key))

    def _prune(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            expires_at, key = heapq.heappop(expiry)
            for table in (self._records, self._values, self._lists):
                record = table.get(key)
                if record is not None and record.expires_at == expires_at:
                    del table[key]
