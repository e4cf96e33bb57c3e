"""Duplicate elimination's decisions, on the in-process store (tests/state covers Redis)."""

from __future__ import annotations

from mhs.state.dedup import DuplicateElimination, First, InProgress, Seen
from mhs.state.memory import MemoryStateStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_first_copy_is_delivered_and_later_ones_get_its_acknowledgment() -> None:
    clock = Clock()
    dedup = DuplicateElimination(MemoryStateStore("t.", clock=clock), pending_ttl_s=30)
    first = await dedup.check("M1")
    assert isinstance(first, First)
    assert await dedup.delivered(first, keep_s=60, acknowledgment=b"<ack/>")
    assert await dedup.check("M1") == Seen(b"<ack/>")
    clock.now += 59
    assert await dedup.check("M1") == Seen(b"<ack/>")
    clock.now += 2  # past the persist duration: a new message as far as we know
    assert isinstance(await dedup.check("M1"), First)


async def test_a_copy_arriving_mid_publish_is_told_to_come_back() -> None:
    store = MemoryStateStore("t.")
    replica_a = DuplicateElimination(store, pending_ttl_s=30, replica="a")
    replica_b = DuplicateElimination(store, pending_ttl_s=30, replica="b")
    first = await replica_a.check("M1")
    assert isinstance(first, First)
    assert first.owner.startswith("a:")
    assert await replica_b.check("M1") == InProgress()
    assert await replica_a.check("M1") == InProgress()  # even on the same replica


async def test_a_failed_publish_lets_the_next_copy_through() -> None:
    dedup = DuplicateElimination(MemoryStateStore("t."), pending_ttl_s=30)
    first = await dedup.check("M1")
    assert isinstance(first, First)
    await dedup.failed(first)
    assert isinstance(await dedup.check("M1"), First)


async def test_a_crashed_replicas_claim_expires() -> None:
    clock = Clock()
    store = MemoryStateStore("t.", clock=clock)
    crashed = DuplicateElimination(store, pending_ttl_s=30, replica="crashed")
    survivor = DuplicateElimination(store, pending_ttl_s=30, replica="survivor")
    assert isinstance(await crashed.check("M1"), First)
    assert await survivor.check("M1") == InProgress()
    clock.now += 31
    again = await survivor.check("M1")
    assert isinstance(again, First)
    assert await survivor.delivered(again, keep_s=60, acknowledgment=b"")
    assert await crashed.check("M1") == Seen(b"")
