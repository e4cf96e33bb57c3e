"""The state store contract, run against every implementation: what roles may rely on."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from mhs.state import Claim, Settlement, StateStore, create_state_store
from mhs.state.redis import RedisStateStore

from .conftest import StoreFactory


async def expire(store: StateStore, name: str, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while await store.remaining_s(name) is not None:
        assert time.monotonic() < deadline, f"{name} did not expire within {within_s}s"
        await asyncio.sleep(0.05)


async def test_the_first_claim_wins_and_others_find_it_pending(store: StateStore) -> None:
    assert await store.claim("m-1", owner="a", ttl_s=30) == Claim(won=True, state="pending")
    assert await store.claim("m-1", owner="b", ttl_s=30) == Claim(won=False, state="pending")
    # A retried call by the holder is harmless: it still holds the claim.
    assert await store.claim("m-1", owner="a", ttl_s=30) == Claim(won=True, state="pending")
    assert await store.claim("m-2", owner="b", ttl_s=30) == Claim(won=True, state="pending")


async def test_settled_claims_are_done_with_their_value(store: StateStore) -> None:
    await store.claim("m-1", owner="a", ttl_s=30)
    assert await store.settle("m-1", owner="a", ttl_s=60, value=b"\x00<ack/>\xff")
    assert await store.claim("m-1", owner="b", ttl_s=30) == Claim(
        won=False, state="done", value=b"\x00<ack/>\xff"
    )
    # Settling is the holder's alone, and settling again is harmless.
    assert not await store.settle("m-1", owner="b", ttl_s=60, value=b"other")
    assert await store.settle("m-1", owner="a", ttl_s=60, value=b"\x00<ack/>\xff")
    assert (await store.claim("m-1", owner="a", ttl_s=30)).state == "done"


async def test_a_released_claim_can_be_won_again(store: StateStore) -> None:
    await store.claim("m-1", owner="a", ttl_s=30)
    assert not await store.release("m-1", owner="b")
    assert (await store.claim("m-1", owner="b", ttl_s=30)).won is False
    assert await store.release("m-1", owner="a")
    assert not await store.release("m-1", owner="a")
    assert await store.remaining_s("m-1") is None
    assert (await store.claim("m-1", owner="b", ttl_s=30)).won
    # A settled claim cannot be released: the message it stands for was delivered.
    assert await store.settle("m-1", owner="b", ttl_s=30)
    assert not await store.release("m-1", owner="b")
    assert (await store.claim("m-1", owner="c", ttl_s=30)).state == "done"


async def test_every_key_has_a_ttl_and_goes_when_it_passes(store: StateStore) -> None:
    assert await store.remaining_s("m-1") is None
    await store.claim("m-1", owner="a", ttl_s=30)
    pending = await store.remaining_s("m-1")
    assert pending is not None
    assert 0 < pending <= 30
    await store.settle("m-1", owner="a", ttl_s=3600)
    done = await store.remaining_s("m-1")
    assert done is not None
    assert 30 < done <= 3600
    assert math.isfinite(done)

    await store.claim("brief", owner="a", ttl_s=0.2)
    await expire(store, "brief")
    assert (await store.claim("brief", owner="b", ttl_s=30)).won


async def test_a_crashed_holders_claim_expires_and_its_late_settle_loses(
    store: StateStore,
) -> None:
    await store.claim("m-1", owner="crashed", ttl_s=0.2)
    await expire(store, "m-1")
    assert (await store.claim("m-1", owner="b", ttl_s=30)).won
    assert not await store.settle("m-1", owner="crashed", ttl_s=30, value=b"late")
    assert await store.settle("m-1", owner="b", ttl_s=30, value=b"b")
    assert (await store.claim("m-1", owner="c", ttl_s=30)).value == b"b"


async def test_a_slow_holder_settles_an_expired_claim_nobody_took(store: StateStore) -> None:
    await store.claim("m-1", owner="slow", ttl_s=0.2)
    await expire(store, "m-1")
    assert await store.settle("m-1", owner="slow", ttl_s=30, value=b"v")
    assert await store.claim("m-1", owner="b", ttl_s=30) == Claim(False, "done", b"v")


async def test_a_claim_reads_a_value_in_the_same_step(store: StateStore) -> None:
    assert (await store.claim("m-1", owner="a", ttl_s=30, read="mark-1")).read is None
    await store.put("mark-2", b"\x00marked\xff", ttl_s=30)
    won = await store.claim("m-2", owner="a", ttl_s=30, read="mark-2")
    assert won == Claim(True, "pending", read=b"\x00marked\xff")
    lost = await store.claim("m-2", owner="b", ttl_s=30, read="mark-2")
    assert lost == Claim(False, "pending", read=b"\x00marked\xff")
    assert (await store.claim("m-3", owner="a", ttl_s=30)).read is None  # not asked


async def test_many_claims_settle_in_one_call_each_on_its_own(store: StateStore) -> None:
    for name in ("m-1", "m-2", "m-3"):
        await store.claim(name, owner="a", ttl_s=30)
    await store.claim("m-4", owner="b", ttl_s=30)
    settled = await store.settle_many(
        [
            Settlement("m-1", "a", 60, b"one"),
            Settlement("m-4", "a", 60, b"not a's"),
            Settlement("m-2", "a", 60, b""),
            Settlement("m-5", "a", 60, b"nobody held it"),
        ]
    )
    assert settled == [True, False, True, True]
    assert await store.claim("m-1", owner="c", ttl_s=30) == Claim(False, "done", b"one")
    assert await store.claim("m-4", owner="c", ttl_s=30) == Claim(False, "pending")
    assert (await store.claim("m-2", owner="c", ttl_s=30)).state == "done"
    assert (await store.claim("m-3", owner="c", ttl_s=30)).state == "pending"
    assert (await store.claim("m-5", owner="c", ttl_s=30)).value == b"nobody held it"
    assert await store.settle_many([]) == []


async def test_a_settlement_batch_over_one_call_arrives_whole(store: StateStore) -> None:
    names = [f"m-{n}" for n in range(1200)]
    settled = await store.settle_many([Settlement(name, "a", 60, name.encode()) for name in names])
    assert settled == [True] * len(names)
    for name in (names[0], names[777], names[-1]):
        assert (await store.claim(name, owner="b", ttl_s=30)).value == name.encode()


async def test_commands_beyond_the_connection_pool_wait_their_turn(store: StateStore) -> None:
    # redis-py fails a command beyond its pool (MaxConnectionsError); ours queue instead.
    claims = await asyncio.gather(*(store.claim(f"m-{n}", owner="a", ttl_s=30) for n in range(300)))
    assert all(claim.won for claim in claims)


async def test_concurrent_claims_from_replicas_have_one_winner(
    store_factory: StoreFactory,
) -> None:
    replicas = [await store_factory() for _ in range(3)]
    claims = await asyncio.gather(
        *(
            replica.claim("m-1", owner=f"owner-{n}-{index}", ttl_s=30)
            for n in range(30)
            for index, replica in enumerate(replicas)
        )
    )
    assert sum(claim.won for claim in claims) == 1
    assert all(claim.state == "pending" for claim in claims)


async def test_deployments_do_not_see_each_others_keys(
    store: StateStore, request: pytest.FixtureRequest, unique: str
) -> None:
    url = request.getfixturevalue("redis_url") if isinstance(store, RedisStateStore) else None
    other = create_state_store(url, prefix=f"test-{unique}-other.")
    await other.start()
    try:
        await store.claim("m-1", owner="a", ttl_s=30)
        assert store.key("m-1") == f"test-{unique}.m-1"
        assert (await other.claim("m-1", owner="b", ttl_s=0.5)).won
    finally:
        await other.stop()


async def test_ttls_must_be_positive(store: StateStore) -> None:
    with pytest.raises(ValueError, match="TTL"):
        await store.claim("m-1", owner="a", ttl_s=0)


async def test_values_are_put_read_replaced_and_deleted(store: StateStore) -> None:
    assert await store.get("w-1") is None
    await store.put("w-1", b"mhs.replies.a", ttl_s=30)
    assert await store.get("w-1") == b"mhs.replies.a"
    await store.put("w-1", b"\x00other\xff", ttl_s=30)
    assert await store.get("w-1") == b"\x00other\xff"
    remaining = await store.remaining_s("w-1")
    assert remaining is not None
    assert 0 < remaining <= 30
    assert await store.delete("w-1")
    assert not await store.delete("w-1")
    assert await store.get("w-1") is None


async def test_a_value_goes_when_its_ttl_passes(store: StateStore) -> None:
    await store.put("brief", b"v", ttl_s=0.2)
    await expire(store, "brief")
    assert await store.get("brief") is None


async def test_replicas_see_each_others_values(store_factory: StoreFactory) -> None:
    writer, reader = await store_factory(), await store_factory()
    await writer.put("w-1", b"q", ttl_s=30)
    assert await reader.get("w-1") == b"q"
    assert await reader.delete("w-1")
    assert await writer.get("w-1") is None


async def test_lists_take_a_batch_in_order_and_keep_their_first_items(
    store: StateStore,
) -> None:
    assert await store.read_list("s-1") == []
    await store.append({"s-1": [b"a", b"b"], "s-2": [b"x"]}, ttl_s=30, cap=4)
    await store.append({"s-1": [b"c"]}, ttl_s=30, cap=4)
    await store.append({"s-2": [b"y", b"\x00z\xff"]}, ttl_s=30, cap=4)
    assert await store.read_list("s-1") == [b"a", b"b", b"c"]
    assert await store.read_list("s-2") == [b"x", b"y", b"\x00z\xff"]
    # Over the cap: the first items stay, later ones are not added.
    await store.append({"s-1": [b"d", b"e", b"f"]}, ttl_s=30, cap=4)
    await store.append({"s-1": [b"g"]}, ttl_s=30, cap=4)
    assert await store.read_list("s-1") == [b"a", b"b", b"c", b"d"]


async def test_a_big_batch_arrives_whole(store: StateStore) -> None:
    batch = {f"s-{n}": [f"{n}-{i}".encode() for i in range(3)] for n in range(1500)}
    await store.append(batch, ttl_s=30, cap=10)
    for n in (0, 777, 1499):
        assert await store.read_list(f"s-{n}") == [f"{n}-{i}".encode() for i in range(3)]


async def test_each_append_sets_the_list_ttl_again(store: StateStore) -> None:
    await store.append({"s-1": [b"a"]}, ttl_s=0.4, cap=10)
    first = await store.remaining_s("s-1")
    assert first is not None
    assert first <= 0.4
    await store.append({"s-1": [b"b"]}, ttl_s=60, cap=10)
    later = await store.remaining_s("s-1")
    assert later is not None
    assert 0.4 < later <= 60
    await store.append({"s-2": [b"a"]}, ttl_s=0.2, cap=10)
    await expire(store, "s-2")
    assert await store.read_list("s-2") == []


async def test_replicas_append_to_the_same_list(store_factory: StoreFactory) -> None:
    one, two = await store_factory(), await store_factory()
    await one.append({"s-1": [b"from-one"]}, ttl_s=30, cap=10)
    await two.append({"s-1": [b"from-two"]}, ttl_s=30, cap=10)
    assert await one.read_list("s-1") == [b"from-one", b"from-two"]


async def test_a_list_needs_room_for_one_item(store: StateStore) -> None:
    with pytest.raises(ValueError, match="cap"):
        await store.append({"s-1": [b"a"]}, ttl_s=30, cap=0)
    with pytest.raises(ValueError, match="TTL"):
        await store.put("w-1", b"v", ttl_s=0)
