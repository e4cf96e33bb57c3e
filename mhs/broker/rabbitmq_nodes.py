"""The nodes of a RabbitMQ cluster, as MHS_BROKER_URL names them (comma-separated URLs),
and following them: a connection that loses its node reconnects to the next one that runs.

aio-pika's robust connection reconnects to the URL it was opened with, forever; while it is
down, ``follow`` points its next attempt at the next node every reconnect interval, so a
role whose node stopped is back on a surviving one within a few intervals.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

from mhs.broker.rabbitmq_channels import LINK_ERRORS, login_refused, unreachable
from mhs.settings import broker_urls, redact_url


class Nodes:
    """The URLs to connect to, in turn, starting with a random one: roles spread their
    connections over the nodes, and with them the leaders of the quorum queues they declare
    (RabbitMQ puts a new queue's leader on the declaring client's node)."""

    def __init__(self, url: str) -> None:
        self.urls = broker_urls(url)
        if not self.urls:
            raise ValueError("no broker URL given")
        self._turn = random.randrange(len(self.urls))  # noqa: S311 - spreading, not secrecy

    @property
    def current(self) -> str:
        return self.urls[self._turn]

    def advance(self) -> str:
        """Move on to the next node; its URL."""
        self._turn = (self._turn + 1) % len(self.urls)
        return self.current

    async def connect(
        self,
        *,
        connection_name: str,
        reconnect_interval_s: float,
        timeout_s: float,
        start_timeout_s: float,
    ) -> AbstractRobustConnection:
        """A robust connection to the first node that answers, trying each in turn until
        ``start_timeout_s`` has passed; BrokerError saying why if none did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + start_timeout_s
        where = redact_url(",".join(self.urls))
        while True:
            try:
                return await aio_pika.connect_robust(
                    self.current,
                    client_properties={"connection_name": connection_name},
                    reconnect_interval=reconnect_interval_s,
                    timeout=max(0.1, min(timeout_s, deadline - loop.time())),
                )
            except aiormq.exceptions.ProbableAuthenticationError as error:
                raise login_refused(where, error) from None
            except (TimeoutError, *LINK_ERRORS) as error:
                if loop.time() + reconnect_interval_s >= deadline:
                    raise unreachable(where, start_timeout_s, error) from None
                self.advance()
                await asyncio.sleep(reconnect_interval_s)

    async def follow(
        self,
        connection: AbstractRobustConnection,
        interval_s: float,
        stopped: Callable[[], bool],
    ) -> None:
        """While ``connection`` is down, aim its reconnect attempts at the next node."""
        if len(self.urls) < 2:
            return
        while not stopped():
            await asyncio.sleep(interval_s)
            if not stopped() and not connection.connected.is_set():
                # Read by aio-pika at each reconnect attempt.
                cast(aio_pika.RobustConnection, connection).url = URL(self.advance())
