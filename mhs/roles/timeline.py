"""Every role's status timeline recorder (mhs.observe.recorder), opened and closed with it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from mhs.observe import recorder as status_recorder
from mhs.observe.logs import Logger
from mhs.settings import Settings

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def timeline_ctx(role: str, settings: Settings, log: Logger) -> CleanupContext:
    """A cleanup context recording the role's message steps while it runs and writing the
    last ones as it stops. Registered right after the metrics, so it stops after everything
    else the role runs: the steps of deliveries finishing during shutdown are written too."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        if role not in status_recorder.RECORDING_ROLES or settings.status_ttl_s == 0:
            yield
            return
        await status_recorder.acquire(
            role,
            log,
            state_url=settings.state_url,
            prefix=settings.queue_prefix,
            ttl_s=settings.status_ttl_s,
        )
        try:
            yield
        finally:
            await status_recorder.release(role)

    return ctx
