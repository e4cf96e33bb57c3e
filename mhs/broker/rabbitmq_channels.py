"""RabbitMQ channels the transport owns: one long-lived channel per purpose, opened again on
first use after it closed; and the errors that mean the link is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import aiormq
from aiormq.abc import AbstractChannel

from mhs.broker.base import BrokerUnavailable

LINK_ERRORS = (aiormq.exceptions.AMQPError, ConnectionError, OSError, RuntimeError)
_T = TypeVar("_T")


class ChannelSlot:
    """One long-lived channel, opened again on first use after it closed."""

    def __init__(self, opener: Callable[[], Awaitable[AbstractChannel]]) -> None:
        self._opener = opener
        self._channel: AbstractChannel | None = None
        self._opening = asyncio.Lock()
        self._calling = asyncio.Lock()

    async def get(self) -> AbstractChannel:
        """The open channel, for concurrent use (publishes pipeline on it)."""
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self._opening:
            channel = self._channel
            if channel is None or channel.is_closed:
                channel = self._channel = await self._opener()
            return channel

    async def call(self, rpc: Callable[[AbstractChannel], Awaitable[_T]], limit_s: float) -> _T:
        """Run one RPC at a time. A broker error closes the channel and fails every RPC
        waiting on it, so serialising keeps each error with the call that caused it."""
        async with self._calling:
            channel = await self.get()
            try:
                async with asyncio.timeout(limit_s):
                    return await rpc(channel)
            except Exception:
                await self.discard()
                raise

    async def discard(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(TimeoutError, *LINK_ERRORS):
                async with asyncio.timeout(5):
                    await channel.close()


def reply_text(error: BaseException) -> str:
    """The broker's reply text of an AMQP error."""
    return str(error.args[0]) if error.args else repr(error)


def _drop(_: logging.LogRecord) -> bool:
    return False


@contextlib.contextmanager
def unlogged_attempts() -> Iterator[None]:
    """aiormq logs every failed connection attempt; while starting, the broker says once
    what went wrong instead."""
    logger = logging.getLogger("aiormq.connection")
    logger.addFilter(_drop)
    try:
        yield
    finally:
        logger.removeFilter(_drop)


def _link_failure(error: BaseException) -> str:
    """A connection failure in a few words: the OS's reason, not the library's wrapping."""
    if isinstance(error, TimeoutError):
        return "no answer"
    last = error.args[-1] if error.args else error
    return str(last).split(": ")[-1] if isinstance(last, str) else repr(last)


def login_refused(where: str, error: BaseException) -> BrokerUnavailable:
    """RabbitMQ at ``where`` (password hidden) said no to our user and password."""
    why = reply_text(error).split(" - ")[0]
    return BrokerUnavailable(
        f"RabbitMQ at {where} refused the login ({why}): check the user name and password "
        "in MHS_BROKER_URL (or --broker)"
    )


def unreachable(where: str, waited_s: float, error: BaseException) -> BrokerUnavailable:
    """RabbitMQ at ``where`` did not answer for ``waited_s``."""
    return BrokerUnavailable(
        f"cannot reach RabbitMQ at {where} within {waited_s:g} s ({_link_failure(error)}): "
        "start it, or set MHS_BROKER_URL (or --broker) to one that runs; unset, the "
        "embedded broker is used"
    )
