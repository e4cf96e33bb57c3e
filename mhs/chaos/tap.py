"""The network between the Spine proxy and the inbound replicas, with faults of its own.

A small load balancer (real aiohttp, on its own port) that the proxy forwards to: it
spreads requests over the inbound replicas and can deliver a message twice (to two
replicas, one after the other or both at once), drop the acknowledgment of a delivered
message (the sender then sends it again), and add latency. A replica that does not answer
is reported as 502, as a load balancer does.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from mhs.roles.http.relay import forwarded_headers


def _share(message_id: str, salt: str) -> float:
    """A stable number in [0, 1) per message, so a choice holds for every copy of it."""
    digest = hashlib.blake2b(f"{salt}:{message_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


@dataclass
class TapFaults:
    """What the tap does to the messages it sees for the first time."""

    duplicate_share: float = 0.0
    drop_ack_share: float = 0.0
    latency_s: float = 0.0


class Tap:
    """Forwards POSTs to the inbound replicas in turn; counts what it did in ``counts``."""

    def __init__(self, replicas: Sequence[str], *, timeout_s: float = 10.0) -> None:
        self.replicas = list(replicas)
        self.faults = TapFaults()
        self.counts: Counter[str] = Counter()
        self._turn = itertools.count()
        self._seen: set[str] = set()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._copies: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self, port: int = 0) -> str:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, connector=aiohttp.TCPConnector(limit=512)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        host, bound = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._copies:
            await asyncio.gather(*self._copies, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _next(self) -> str:
        return self.replicas[next(self._turn) % len(self.replicas)]

    async def _send(
        self, base: str, path: str, body: bytes, headers: CIMultiDict[str]
    ) -> tuple[int, bytes, str | None]:
        assert self._session is not None
        try:
            async with self._session.post(base + path, data=body, headers=headers) as response:
                return response.status, await response.read(), response.headers.get("Content-Type")
        except (aiohttp.ClientError, TimeoutError) as error:
            self.counts["replica_unreachable"] += 1
            return 502, f"inbound replica unreachable: {error!r}".encode(), "text/plain"

    async def _relay(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = forwarded_headers(request.headers.items())
        message_id = request.headers.get("Message-Id", "")
        self.counts["received"] += 1
        first_time = message_id not in self._seen
        self._seen.add(message_id)
        faults = self.faults
        if faults.latency_s:
            await asyncio.sleep(faults.latency_s)
        path = request.path_qs
        self.counts["forwarded"] += 1
        duplicate = first_time and _share(message_id, "duplicate") < faults.duplicate_share
        if duplicate and _share(message_id, "together") < 0.5:
            # Both replicas at once: one publishes, the other must not.
            self.counts["duplicates_sent_concurrently"] += 1
            first, second = self._next(), self._next()
            answers = await asyncio.gather(
                self._send(first, path, body, headers), self._send(second, path, body, headers)
            )
            self._count_copy(answers[1][0])
            status, reply, content_type = answers[0] if answers[0][0] < 300 else answers[1]
        else:
            status, reply, content_type = await self._send(self._next(), path, body, headers)
            if duplicate:
                self.counts["duplicates_sent_after"] += 1
                copy = asyncio.get_running_loop().create_task(self._late_copy(path, body, headers))
                self._copies.add(copy)
                copy.add_done_callback(self._copies.discard)
        if first_time and status < 300 and _share(message_id, "drop-ack") < faults.drop_ack_share:
            # Delivered, but the sender never hears so: it sends the message again.
            self.counts["acks_dropped"] += 1
            return web.Response(status=503, text="acknowledgment lost on the way back")
        response_headers = {"Content-Type": content_type} if content_type else {}
        return web.Response(status=status, body=reply, headers=response_headers)

    async def _late_copy(self, path: str, body: bytes, headers: CIMultiDict[str]) -> None:
        status, _, _ = await self._send(self._next(), path, body, headers)
        self._count_copy(status)

    def _count_copy(self, status: int) -> None:
        self.counts[f"duplicate_answered_{status}"] += 1
