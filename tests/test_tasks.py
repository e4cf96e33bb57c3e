"""stop_task: bounded, and never hides the caller's own cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mhs.tasks import stop_task


async def _stubborn(stop: asyncio.Event) -> None:
    # Survives cancellation the way a library that turns it into an error makes a loop do.
    while not stop.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)


async def test_a_task_that_ends_when_cancelled_is_stopped() -> None:
    task = asyncio.create_task(asyncio.sleep(60))
    assert await stop_task(task, within_s=1)
    assert task.cancelled()


async def test_a_task_that_survives_cancellation_is_given_up_on_within_the_bound() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(_stubborn(stop))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not await stop_task(task, within_s=0.2)
    assert 0.2 <= loop.time() - started < 1.0
    assert not task.done()
    stop.set()
    task.cancel()
    await asyncio.wait({task}, timeout=2)
    assert task.done()


async def test_grace_lets_a_task_finish_by_itself_first() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(stop.wait())
    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await stop_task(task, within_s=1, grace_s=2)
    assert not task.cancelled()
    assert task.result() is True


async def test_a_failed_task_counts_as_stopped() -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fail())
    await asyncio.sleep(0)
    assert await stop_task(task, within_s=1)
    assert isinstance(task.exception(), RuntimeError)


async def test_the_callers_cancellation_still_propagates() -> None:
    stop = asyncio.Event()
    inner = asyncio.create_task(_stubborn(stop))
    outer = asyncio.create_task(stop_task(inner, within_s=30))
    await asyncio.sleep(0.05)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    stop.set()
    inner.cancel()
    await asyncio.wait({inner}, timeout=2)
