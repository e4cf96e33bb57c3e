"""The yardstick: the product's hops with no logic, for scripts/bench to measure against.

HTTP POST -> publish with confirm -> consume -> HTTP POST -> HTTP POST -> publish with
confirm -> consume, one role per process, with the libraries and settings the product
uses (aiohttp, aio-pika on uvloop, durable quorum queues with a delivery limit,
persistent mandatory publishes, prefetch 64, long-lived connections and sessions).

    python scripts/yardstick.py outbound --port 9080 --amqp URL --queue Q
    python scripts/yardstick.py worker   --port 9083 --amqp URL --queue Q --target URL
    python scripts/yardstick.py proxy    --port 9081 --target URL
    python scripts/yardstick.py inbound  --port 9082 --amqp URL --queue Q
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import aiohttp
import uvloop
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiohttp import web
from pamqp.common import FieldTable

QUEUE_ARGUMENTS: FieldTable = {"x-queue-type": "quorum", "x-delivery-limit": 20}
PREFETCH = 64

CHANNEL = web.AppKey("channel", AbstractChannel)
SESSION = web.AppKey("session", aiohttp.ClientSession)
QUEUE = web.AppKey("queue", str)
DECLARED = web.AppKey("declared", set[str])
# With --yardstick-queues the bench names each message's recipient queue here, as the
# product's recipient is named by ods-code; every hop carries it on.
TO_QUEUE = "To-Queue"
TARGET = web.AppKey("target", str)


def _broker_ctx(url: str, queue: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        connection = await aio_pika.connect_robust(url)
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments=QUEUE_ARGUMENTS)
        app[CHANNEL] = channel
        app[QUEUE] = queue
        app[DECLARED] = {queue}
        yield
        await connection.close()

    return ctx


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        app[SESSION] = session
        yield


async def _publish(
    app: web.Application,
    body: bytes,
    message_id: str | None,
    *,
    queue: str | None = None,
    to_queue: str | None = None,
) -> None:
    message = aio_pika.Message(
        body,
        message_id=message_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={TO_QUEUE: to_queue} if to_queue else None,
    )
    queue = queue or app[QUEUE]
    if queue not in app[DECLARED]:
        await app[CHANNEL].declare_queue(queue, durable=True, arguments=QUEUE_ARGUMENTS)
        app[DECLARED].add(queue)
    await app[CHANNEL].default_exchange.publish(message, routing_key=queue, mandatory=True)


async def accept(request: web.Request) -> web.Response:
    """Outbound: confirm the message onto the queue, answer 202."""
    await _publish(
        request.app,
        await request.read(),
        request.headers.get("Message-Id"),
        to_queue=request.headers.get(TO_QUEUE),
    )
    return web.Response(status=202)


async def relay(request: web.Request) -> web.Response:
    """Proxy: pass the POST on to the target and its answer back."""
    body = await request.read()
    headers = {"Message-Id": request.headers.get("Message-Id", "")}
    if TO_QUEUE in request.headers:
        headers[TO_QUEUE] = request.headers[TO_QUEUE]
    async with request.app[SESSION].post(
        request.app[TARGET], data=body, headers=headers
    ) as response:
        return web.Response(status=response.status, body=await response.read())


async def receive(request: web.Request) -> web.Response:
    """Inbound: confirm the message onto the recipient queue, answer 200."""
    await _publish(
        request.app,
        await request.read(),
        request.headers.get("Message-Id"),
        queue=request.headers.get(TO_QUEUE),
    )
    return web.Response(status=200)


def _worker_ctx(
    url: str, queue: str, target: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        connection = await aio_pika.connect_robust(url)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        declared = await channel.declare_queue(queue, durable=True, arguments=QUEUE_ARGUMENTS)
        session = app[SESSION]

        async def deliver(message: AbstractIncomingMessage) -> None:
            headers = {"Message-Id": message.message_id or ""}
            to_queue = (message.headers or {}).get(TO_QUEUE)
            if isinstance(to_queue, str):
                headers[TO_QUEUE] = to_queue
            async with session.post(target, data=message.body, headers=headers) as response:
                await response.read()
            await message.ack()

        await declared.consume(deliver)
        yield
        await connection.close()

    return ctx


def build(args: argparse.Namespace) -> web.Application:
    """The application for one yardstick role."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    handlers: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
        "outbound": accept,
        "proxy": relay,
        "inbound": receive,
    }
    if args.role in ("outbound", "inbound"):
        app.cleanup_ctx.append(_broker_ctx(args.amqp, args.queue))
    if args.role in ("proxy", "worker"):
        app[TARGET] = args.target
        app.cleanup_ctx.append(_session_ctx)
    if args.role == "worker":
        app.cleanup_ctx.append(_worker_ctx(args.amqp, args.queue, args.target))
    else:
        app.router.add_post("/{tail:.*}", handlers[args.role])
    app.router.add_get("/readyz", ready)
    return app


async def ready(_: web.Request) -> web.Response:
    return web.Response(text="ready")


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(build(args), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["outbound", "worker", "proxy", "inbound"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", default="yardstick")
    parser.add_argument("--target", default="")
    uvloop.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
