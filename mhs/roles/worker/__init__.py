"""Delivery workers: the role that sends queued messages to Spine (mhs.roles.worker.delivery)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from mhs.broker import Broker
from mhs.directory import Directory
from mhs.observe.logs import get_logger
from mhs.roles.common import (
    BROKER,
    DIRECTORY,
    LOG,
    METRICS,
    READINESS,
    SETTINGS,
    create_role_app,
)
from mhs.roles.http.client import client_session
from mhs.roles.worker.delivery import DeliveryWorker
from mhs.settings import Settings

ROLE = "worker"
WORKER = web.AppKey("worker", DeliveryWorker)


def create_worker_app(
    settings: Settings, directory: Directory, *, broker: Broker | None = None
) -> web.Application:
    """A delivery worker: consumes the outbound queue; serves health on ``worker_port``."""
    app = create_role_app(ROLE, settings, directory, broker, get_logger(ROLE))
    app.cleanup_ctx.append(_worker_ctx)
    return app


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with client_session(
        settings,
        total_s=settings.delivery_timeout_s,
        limit=settings.prefetch * 2,
        auto_decompress=True,
    ) as session:
        worker = DeliveryWorker(settings, app[DIRECTORY], app[BROKER], session, app[LOG])
        app[WORKER] = worker
        app[READINESS].append(worker.readiness)

        def in_flight() -> int:
            return worker.in_flight

        app[METRICS].track_in_flight(in_flight)
        await worker.start()
        yield
        await worker.stop()
        app[METRICS].untrack_in_flight(in_flight)
