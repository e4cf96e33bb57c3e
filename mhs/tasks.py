"""Stopping background tasks within a bound, without hiding the caller's own cancellation."""

from __future__ import annotations

import asyncio
from typing import Any


async def stop_task(
    task: asyncio.Task[Any] | None, *, within_s: float, grace_s: float = 0.0
) -> bool:
    """Let ``task`` end by itself for ``grace_s``, then cancel it and wait up to
    ``within_s``; False if it is still running after that.

    ``with suppress(CancelledError): await task`` would also swallow a cancellation of the
    caller, and would wait for ever on a task that survives its own (redis-py, for one,
    can turn a cancellation inside a command into a ConnectionError).
    """
    if task is None:
        return True
    if grace_s > 0 and not task.done():
        await asyncio.wait({task}, timeout=grace_s)
    if not task.done():
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=within_s)
        if not done:
            return False
    if not task.cancelled():
        # Marked as retrieved, so asyncio does not log it as never retrieved.
        task.exception()
    return True
