"""Duplicate elimination's decisions, on the in-process store (tests/state covers Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from mhs.state import Settlement, StateError
from mhs.state.dedup import NOT_SETTLED, DuplicateElimination, First, InProgress, Seen
from mhs.state.memory import MemoryStateStore


async def delivered(dedup: DuplicateElimination, first: First, ack: bytes) -> None:
    """Settle ``first`` behind, wait for the write, and check it took."""
    problems: list[str] = []
    dedup.settle_behind(first, keep_s=60, acknowledgment=ack, not_settled=problems.append)
    await dedup.drain(within_s=5)
    assert problems == []


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
    await delivered(dedup, first, b"<ack/>")
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
    await delivered(survivor, again, b"")
    assert await crashed.check("M1") == Seen(b"")


class Failing(MemoryStateStore):
    """The in-process store whose reads and settlements fail while ``down`` is set (with
    ``error``); it counts its settle calls, and each waits for ``answer`` when that is set."""

    down = False
    error: Exception = StateError("the store did not answer")
    settle_calls = 0
    answer: asyncio.Event | None = None

    async def get(self, name: str) -> bytes | None:
        if self.down:
            raise StateError("the store did not answer")
        return await super().get(name)

    async def settle_many(self, settlements: Sequence[Settlement]) -> list[bool]:
        self.settle_calls += 1
        if self.answer is not None:
            await self.answer.wait()
        if self.down:
            raise self.error
        return await super().settle_many(settlements)


async def test_after_an_unconfirmed_publish_the_next_copy_is_delivered_flagged() -> None:
    store = MemoryStateStore("t.")
    replica_a = DuplicateElimination(store, pending_ttl_s=30, replica="a")
    replica_b = DuplicateElimination(store, pending_ttl_s=30, replica="b")
    first = await replica_a.check("M1")
    assert isinstance(first, First)
    assert not first.possible_duplicate
    await replica_a.uncertain("M1", first, keep_s=60)
    # The claim is given up (the copy may not have landed) but not forgotten: any
    # replica's next copy is delivered, flagged, and once settled the rest are dropped.
    again = await replica_b.check("M1")
    assert isinstance(again, First)
    assert again.possible_duplicate
    assert await replica_a.check("M1") == InProgress()
    await delivered(replica_b, again, b"<ack/>")
    assert await replica_a.check("M1") == Seen(b"<ack/>")
    assert not (await replica_a.possible_duplicate("M2"))


async def test_a_flagged_copy_whose_confirm_is_lost_too_leaves_the_next_one_flagged() -> None:
    dedup = DuplicateElimination(MemoryStateStore("t."), pending_ttl_s=30)
    for _ in range(3):
        copy = await dedup.check("M1")
        assert isinstance(copy, First)
        await dedup.uncertain("M1", copy, keep_s=60)
    last = await dedup.check("M1")
    assert isinstance(last, First)
    assert last.possible_duplicate


async def test_the_uncertain_mark_lasts_the_persist_duration() -> None:
    clock = Clock()
    dedup = DuplicateElimination(MemoryStateStore("t.", clock=clock), pending_ttl_s=30)
    first = await dedup.check("M1")
    assert isinstance(first, First)
    await dedup.uncertain("M1", first, keep_s=60)
    clock.now += 59
    assert await dedup.possible_duplicate("M1")
    clock.now += 2  # the sender stopped retrying long ago: a new message as far as we know
    later = await dedup.check("M1")
    assert isinstance(later, First)
    assert not later.possible_duplicate


async def test_a_certain_failure_leaves_no_mark() -> None:
    dedup = DuplicateElimination(MemoryStateStore("t."), pending_ttl_s=30)
    first = await dedup.check("M1")
    assert isinstance(first, First)
    await dedup.failed(first)
    again = await dedup.check("M1")
    assert isinstance(again, First)
    assert not again.possible_duplicate


async def test_without_a_claim_the_mark_is_read_and_unknown_counts_as_possible() -> None:
    store = Failing("t.")
    dedup = DuplicateElimination(store, pending_ttl_s=30)
    await dedup.uncertain("M1", None, keep_s=60)
    assert await dedup.possible_duplicate("M1")
    assert not await dedup.possible_duplicate("M2")
    store.down = True
    assert await dedup.possible_duplicate("M2")


async def test_the_claim_reads_the_mark_in_its_own_step() -> None:
    store = Failing("t.")
    dedup = DuplicateElimination(store, pending_ttl_s=30)
    await dedup.uncertain("M1", None, keep_s=60)
    store.down = True  # a separate read would fail: the claim needs none
    first = await dedup.check("M1")
    assert isinstance(first, First)
    assert first.possible_duplicate


async def test_settlements_are_written_behind_many_in_one_call() -> None:
    store = Failing("t.")
    dedup = DuplicateElimination(store, pending_ttl_s=30, replica="a")
    other = DuplicateElimination(store, pending_ttl_s=30, replica="b")
    firsts = [await dedup.check(f"M{n}") for n in range(50)]
    problems: list[str] = []
    for n, first in enumerate(firsts):
        assert isinstance(first, First)
        ack = f"<ack {n}/>".encode()
        dedup.settle_behind(first, keep_s=60, acknowledgment=ack, not_settled=problems.append)
    # Not written yet: this replica answers a copy itself; another finds it pending.
    assert await dedup.check("M7") == Seen(b"<ack 7/>")
    assert await other.check("M7") == InProgress()
    await dedup.drain(within_s=5)
    assert problems == []
    assert store.settle_calls == 1
    assert await other.check("M7") == Seen(b"<ack 7/>")


async def test_a_settlement_that_fails_is_reported_and_the_claim_stays_pending() -> None:
    store = Failing("t.")
    dedup = DuplicateElimination(store, pending_ttl_s=30)
    first = await dedup.check("M1")
    assert isinstance(first, First)
    store.down = True
    problems: list[str] = []
    dedup.settle_behind(first, keep_s=60, acknowledgment=b"<ack/>", not_settled=problems.append)
    await dedup.drain(within_s=5)
    assert problems == ["the store did not answer"]
    store.down = False
    # Nothing answers for it now: copies come back later until the pending TTL passes.
    assert await dedup.check("M1") == InProgress()


async def test_a_settlement_after_another_copy_took_the_claim_is_reported() -> None:
    clock = Clock()
    store = MemoryStateStore("t.", clock=clock)
    slow = DuplicateElimination(store, pending_ttl_s=30, replica="slow")
    fast = DuplicateElimination(store, pending_ttl_s=30, replica="fast")
    late = await slow.check("M1")
    assert isinstance(late, First)
    clock.now += 31
    taken = await fast.check("M1")
    assert isinstance(taken, First)
    problems: list[str] = []
    slow.settle_behind(late, keep_s=60, acknowledgment=b"", not_settled=problems.append)
    await slow.drain(within_s=5)
    assert problems == [NOT_SETTLED]


class NoRelease(MemoryStateStore):
    """The in-process store whose releases fail: the store went away mid-step."""

    async def release(self, name: str, *, owner: str) -> bool:
        raise StateError("the store did not answer")


async def test_a_mark_made_before_the_store_went_away_still_flags_the_next_copy() -> None:
    clock = Clock()
    dedup = DuplicateElimination(NoRelease("t.", clock=clock), pending_ttl_s=30)
    first = await dedup.check("M1")
    assert isinstance(first, First)
    await dedup.uncertain("M1", first, keep_s=60)  # marked; the claim could not be given up
    assert await dedup.check("M1") == InProgress()
    clock.now += 31  # the pending claim expired
    later = await dedup.check("M1")
    assert isinstance(later, First)
    assert later.possible_duplicate


async def test_a_settlement_added_while_a_write_is_in_flight_is_written_next() -> None:
    store = Failing("t.")
    store.answer = asyncio.Event()
    dedup = DuplicateElimination(store, pending_ttl_s=30, replica="a", linger_s=0)
    other = DuplicateElimination(store, pending_ttl_s=30, replica="b")
    one, two = await dedup.check("M1"), await dedup.check("M2")
    assert isinstance(one, First)
    assert isinstance(two, First)
    problems: list[str] = []
    dedup.settle_behind(one, keep_s=60, acknowledgment=b"<1/>", not_settled=problems.append)
    await eventually_true(lambda: store.settle_calls == 1)  # M1's call is waiting
    dedup.settle_behind(two, keep_s=60, acknowledgment=b"<2/>", not_settled=problems.append)
    assert await dedup.check("M1") == Seen(b"<1/>")  # in flight: answered from memory
    store.answer.set()
    assert await dedup.drain(within_s=5) == 0
    assert (store.settle_calls, problems) == (2, [])
    assert await other.check("M2") == Seen(b"<2/>")


async def test_any_failure_of_a_write_is_reported_and_the_writer_goes_on() -> None:
    store = Failing("t.")
    store.down, store.error = True, RuntimeError("a bug in the store")
    dedup = DuplicateElimination(store, pending_ttl_s=30, linger_s=0)
    first = await dedup.check("M1")
    assert isinstance(first, First)
    problems: list[str] = []
    dedup.settle_behind(first, keep_s=60, acknowledgment=b"", not_settled=problems.append)
    await dedup.drain(within_s=5)
    assert problems == ["RuntimeError('a bug in the store')"]
    store.down = False
    later = await dedup.check("M2")
    assert isinstance(later, First)
    dedup.settle_behind(later, keep_s=60, acknowledgment=b"<2/>", not_settled=problems.append)
    assert await dedup.drain(within_s=5) == 0
    assert await dedup.check("M2") == Seen(b"<2/>")


async def test_a_bad_persist_duration_fails_its_own_message_not_the_batch() -> None:
    dedup = DuplicateElimination(MemoryStateStore("t."), pending_ttl_s=30)
    first = await dedup.check("M1")
    assert isinstance(first, First)
    with pytest.raises(ValueError, match="TTL"):
        dedup.settle_behind(first, keep_s=0, acknowledgment=b"", not_settled=print)


async def test_what_a_stop_could_not_write_is_counted() -> None:
    store = Failing("t.")
    store.answer = asyncio.Event()  # never answers
    dedup = DuplicateElimination(store, pending_ttl_s=30, linger_s=0)
    first = await dedup.check("M1")
    assert isinstance(first, First)
    dedup.settle_behind(first, keep_s=60, acknowledgment=b"", not_settled=print)
    assert await dedup.drain(within_s=0.2) == 1


async def eventually_true(check: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)
