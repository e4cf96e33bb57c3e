"""What only the in-process store shows: it forgets expired claims as time passes."""

from __future__ import annotations

from mhs.state.memory import MemoryStateStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_does_not_grow_without_bound() -> None:
    clock = Clock()
    store = MemoryStateStore("p.", clock=clock)
    for n in range(10_000):
        await store.claim(f"m{n}", owner="a", ttl_s=1)
        if n % 2:
            await store.settle(f"m{n}", owner="a", ttl_s=1)
        clock.now += 0.01
    # Only claims from the last second are kept.
    assert len(store) <= 101
    clock.now += 1
    assert len(store) == 0
