"""The state stores under test: the in-process one, and Redis with a unique key prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from mhs.state import StateStore, create_state_store

StoreFactory = Callable[[], Awaitable[StateStore]]


@pytest.fixture(
    params=[pytest.param("memory", id="memory"), pytest.param("redis", marks=pytest.mark.redis)]
)
async def store_factory(request: pytest.FixtureRequest, unique: str) -> AsyncIterator[StoreFactory]:
    """Makes started stores sharing one key prefix, as replicas of one deployment do."""
    url: str | None = request.getfixturevalue("redis_url") if request.param == "redis" else None
    prefix = f"test-{unique}."
    stores: list[StateStore] = []
    shared: StateStore | None = None

    async def make() -> StateStore:
        nonlocal shared
        if url is None and shared is not None:
            return shared  # the in-process store is one per process
        store = create_state_store(url, prefix=prefix)
        await store.start()
        stores.append(store)
        shared = store
        return store

    yield make
    for store in stores:
        await store.stop()
    if url is not None:
        client = aioredis.Redis.from_url(url)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def store(store_factory: StoreFactory) -> StateStore:
    return await store_factory()
