"""Duplicate elimination: message ids seen within their persist duration."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable


class SeenIds:
    """Message ids claimed by this inbound MHS, forgotten after their persist duration.

    ``claim`` is atomic within one event loop (no await inside), so two concurrent copies
    of one message cannot both be delivered.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def claim(self, message_id: str, keep_s: float) -> bool:
        """True if ``message_id`` is new (and is now remembered for ``keep_s``)."""
        now = self._clock()
        self._prune(now)
        if message_id in self._expiry:
            return False
        expires = now + keep_s
        self._expiry[message_id] = expires
        heapq.heappush(self._heap, (expires, message_id))
        return True

    def release(self, message_id: str) -> None:
        """Forget a claim whose delivery failed, so the sender's retry is not dropped."""
        self._expiry.pop(message_id, None)

    def _prune(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            expires, message_id = heapq.heappop(heap)
            if self._expiry.get(message_id) == expires:
                del self._expiry[message_id]
