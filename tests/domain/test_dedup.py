from __future__ import annotations

from mhs.dedup import SeenIds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_claim_once_within_the_window_and_again_after() -> None:
    clock = Clock()
    seen = SeenIds(clock)
    assert seen.claim("A", 60)
    assert not seen.claim("A", 60)
    clock.now += 59
    assert not seen.claim("A", 60)
    clock.now += 2
    assert seen.claim("A", 60)


def test_release_lets_a_retry_through() -> None:
    seen = SeenIds(Clock())
    assert seen.claim("A", 60)
    seen.release("A")
    assert seen.claim("A", 60)


def test_memory_does_not_grow_without_bound() -> None:
    clock = Clock()
    seen = SeenIds(clock)
    for n in range(10_000):
        seen.claim(f"M{n}", 1)
        clock.now += 0.01
    # Only ids from the last second are kept.
    assert len(seen) <= 101
