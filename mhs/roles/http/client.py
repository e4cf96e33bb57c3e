"""The HTTP client a role sends with: TLS from the settings, a bounded pool, one timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from mhs.settings import Settings
from mhs.tls import client_context


@asynccontextmanager
async def client_session(
    settings: Settings, *, total_s: float, limit: int = 256, auto_decompress: bool = False
) -> AsyncIterator[aiohttp.ClientSession]:
    """A session for the role's lifetime. Bodies are relayed as they came unless
    ``auto_decompress`` (a relay must not decode what it passes on)."""
    connector = aiohttp.TCPConnector(limit=limit, ssl=client_context(settings) or True)
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=total_s),
        connector=connector,
        auto_decompress=auto_decompress,
    ) as session:
        yield session
