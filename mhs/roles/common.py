"""What every role's application shares: typed app keys, the broker's lifetime, health and
metrics routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from mhs.broker import Broker, BrokerError
from mhs.broker.factory import broker_for
from mhs.directory import Directory
from mhs.observe import metrics as role_metrics
from mhs.observe import recorder as status_recorder
from mhs.observe.events import Event
from mhs.observe.logger import Logger
from mhs.observe.metrics import RoleMetrics
from mhs.settings import Settings, redact_url
from mhs.state import StateStore, create_state_store

ReadinessCheck = Callable[[], str | None]
QUEUE_DEPTH_TIMEOUT_S = 1.0


@dataclass
class Lifecycle:
    """Where the role is in its life (the app's state cannot change once it has started)."""

    stopping: bool = False


SETTINGS = web.AppKey("settings", Settings)
DIRECTORY = web.AppKey("directory", Directory)
BROKER = web.AppKey("broker", Broker)
LOG = web.AppKey("log", Logger)
ROLE = web.AppKey("role", str)
READINESS = web.AppKey("readiness", list[ReadinessCheck])
METRICS = web.AppKey("metrics", RoleMetrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)


def json_response(
    data: Any, *, status: int = 200, content_type: str = "application/json"
) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=content_type)


def text_error(status: int, text: str, **headers: str) -> web.Response:
    """An error the NHS adaptor's way: text/plain, ``<status>: <what is wrong>``."""
    return web.Response(
        status=status, text=f"{status}: {text}", content_type="text/plain", headers=headers
    )


def create_role_app(
    role: str,
    settings: Settings,
    directory: Directory,
    broker: Broker | None,
    log: Logger,
    *,
    uses_broker: bool = True,
) -> web.Application:
    """An application with the shared keys, health and metrics routes, and (unless given)
    its own broker.

    A role that ``uses_broker=False`` neither connects one nor reports on it. ``/metrics``
    serves the role's own registry (mhs.observe.metrics); a role adds gauges through
    ``app[METRICS]`` (for example ``app[METRICS].track_in_flight(...)``) once its
    start-up has begun.
    """
    app = web.Application(client_max_size=settings.max_request_bytes)
    app[ROLE] = role
    app[SETTINGS] = settings
    app[DIRECTORY] = directory
    app[LOG] = log
    app[LIFECYCLE] = Lifecycle()
    app[READINESS] = [lambda: _lifecycle_problem(app), lambda: _directory_problem(app)]
    # First, so every later start-up step (the broker's connection too) is counted.
    app.cleanup_ctx.append(_metrics_ctx)
    app.cleanup_ctx.append(timeline_ctx(role, settings, log))
    if uses_broker:
        if broker is None:
            app.cleanup_ctx.append(_owned_broker(role))
        else:
            app[BROKER] = broker
        app[READINESS].append(lambda: _broker_problem(app))
    app.router.add_get("/healthz", _alive)
    app.router.add_get("/healthcheck", _alive)
    app.router.add_get("/readyz", _ready)
    app.router.add_get("/metrics", _metrics)
    app.on_startup.append(_log_started)
    app.on_shutdown.append(_log_stopping)
    return app


async def _metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    role = app[ROLE]
    settings = app[SETTINGS]
    app[METRICS] = role_metrics.acquire(
        role,
        instance_labels=settings.metrics_instance_labels,
        instances=sum(1 for _ in app[DIRECTORY].parties),
    )
    try:
        yield
    finally:
        role_metrics.release(role)


def _owned_broker(role: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        broker = broker_for(settings, role)
        await broker.start()
        app[BROKER] = broker
        app[LOG].info(
            Event.BROKER_CONNECTED,
            broker=redact_url(settings.broker_url) if settings.broker_url else "memory",
        )
        yield
        await broker.stop()

    return ctx


def _lifecycle_problem(app: web.Application) -> str | None:
    return "role stopping" if app[LIFECYCLE].stopping else None


def _directory_problem(app: web.Application) -> str | None:
    return None if any(True for _ in app[DIRECTORY].parties) else "directory has no instances"


def _broker_problem(app: web.Application) -> str | None:
    broker = app.get(BROKER)
    return None if broker is not None and broker.is_connected else "broker not connected"


def readiness_problems(app: web.Application) -> list[str]:
    """What stands between the role and ready, now (empty: ready)."""
    return [p for check in app[READINESS] if (p := check()) is not None]


async def _alive(request: web.Request) -> web.Response:
    return json_response({"status": "alive", "role": request.app[ROLE]})


async def _ready(request: web.Request) -> web.Response:
    problems = readiness_problems(request.app)
    if problems:
        return json_response(
            {"status": "not-ready", "role": request.app[ROLE], "problems": problems}, status=503
        )
    return json_response({"status": "ready", "role": request.app[ROLE]})


# Queues whose depth a role reports: the outbound MHS fills the outbound queue, the
# workers drain it and fill the dead-letter queue.
_WATCHED_QUEUES: dict[str, tuple[str, ...]] = {
    "outbound": ("outbound",),
    "worker": ("outbound", "dead-letter"),
}


async def _metrics(request: web.Request) -> web.StreamResponse:
    app = request.app
    metrics = app[METRICS]
    metrics.ready.set(0 if readiness_problems(app) else 1)
    broker = app.get(BROKER)
    if broker is not None:
        metrics.broker_connected(broker.is_connected)
        names = _WATCHED_QUEUES.get(app[ROLE], ())
        await asyncio.gather(
            *(_measure_queue(broker, metrics, app[SETTINGS].queue(n)) for n in names)
        )
    return await make_aiohttp_handler(metrics.registry)(request)


async def _measure_queue(broker: Broker, metrics: RoleMetrics, queue: str) -> None:
    try:
        async with asyncio.timeout(QUEUE_DEPTH_TIMEOUT_S):
            depth = await broker.queue_depth(queue)
    except (BrokerError, TimeoutError):
        # No figure rather than a stale one: the series disappears until the broker answers.
        with contextlib.suppress(KeyError):
            metrics.queue_depth.remove(queue)
        return
    metrics.queue_depth.labels(queue).set(depth)


async def _log_started(app: web.Application) -> None:
    app[LOG].info(
        Event.ROLE_STARTED, directory=app[DIRECTORY].source, settings=app[SETTINGS].redacted()
    )


async def _log_stopping(app: web.Application) -> None:
    app[LIFECYCLE].stopping = True
    app[LOG].info(Event.ROLE_STOPPING)


@contextlib.asynccontextmanager
async def opened_state_store(app: web.Application) -> AsyncIterator[StateStore]:
    """The role's state store (Redis, or the in-process one), started and logged, for the
    length of the block."""
    settings = app[SETTINGS]
    store = create_state_store(settings.state_url, prefix=settings.queue_prefix)
    await store.start()
    app[LOG].info(
        Event.STATE_CONNECTED,
        store=redact_url(settings.state_url) if settings.state_url else "memory",
    )
    try:
        yield store
    finally:
        await store.stop()


def timeline_ctx(
    role: str, settings: Settings, log: Logger
) -> Callable[[web.Application], AsyncIterator[None]]:
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
