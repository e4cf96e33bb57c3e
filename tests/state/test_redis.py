"""What only Redis shows: replicas on separate connections, and an unreachable server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from mhs.state import StateError
from mhs.state.redis import RedisStateStore
from tests.broker.support import eventually
from tests.faults.network import Link

pytestmark = pytest.mark.redis


@pytest.fixture
async def link(redis_url: str) -> AsyncIterator[Link]:
    parts = urlsplit(redis_url)
    forwarder = Link(parts.hostname or "127.0.0.1", parts.port or 6379)
    await forwarder.up()
    yield forwarder
    with contextlib.suppress(AssertionError):
        await forwarder.cut()


async def test_an_unreachable_store_fails_start_without_showing_the_password() -> None:
    store = RedisStateStore(
        "redis://:s3cret-pw@127.0.0.1:1/0", prefix="test.", timeout_s=0.2, start_timeout_s=0.5
    )
    with pytest.raises(StateError, match="cannot reach Redis") as raised:
        await store.start()
    assert "s3cret-pw" not in str(raised.value)
    assert not store.available
    await store.stop()


async def test_a_lost_link_fails_calls_clearly_and_readiness_follows_it(
    link: Link, unique: str
) -> None:
    store = RedisStateStore(
        f"redis://127.0.0.1:{link.port}/0",
        prefix=f"test-{unique}.",
        timeout_s=0.5,
        ping_interval_s=0.05,
    )
    await store.start()

    def available() -> bool:
        return store.available

    try:
        assert available()
        assert (await store.claim("m-1", owner="a", ttl_s=5)).won
        await link.cut()
        with pytest.raises(StateError, match="did not answer"):
            await store.claim("m-2", owner="a", ttl_s=5)
        assert not available()
        await link.up()
        await eventually(available, within_s=10)
        # Nothing was forgotten while the link was down.
        assert (await store.claim("m-1", owner="b", ttl_s=5)).state == "pending"
        assert await store.release("m-1", owner="a")
    finally:
        await store.stop()


async def test_stop_ends_the_ping_task_even_when_a_ping_swallows_the_cancellation(
    redis_url: str, unique: str
) -> None:
    # redis-py turns a cancellation that lands inside a command into a ConnectionError, so
    # a store stopped mid-ping used to keep pinging and its stop() never returned.
    for _ in range(30):
        store = RedisStateStore(redis_url, prefix=f"test-{unique}.", ping_interval_s=0.0)
        await store.start()
        await asyncio.sleep(0.001)
        async with asyncio.timeout(5):
            await store.stop()
        assert not store.available
