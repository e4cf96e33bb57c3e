"""Passing HTTP requests and answers on: which headers stay behind, and streaming bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

# RFC 9110 §7.6.1: these describe one connection, not the message.
HOP_BY_HOP = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "proxy-connection",
        "te",
        "trailer",
    }
)
CHUNK_BYTES = 64 * 1024


def forwarded_headers(
    headers: Iterable[tuple[str, str]], dropped: frozenset[str] = HOP_BY_HOP
) -> CIMultiDict[str]:
    """``headers`` without the ``dropped`` ones (lower-case names)."""
    return CIMultiDict((name, value) for name, value in headers if name.lower() not in dropped)


@asynccontextmanager
async def upstream(
    session: aiohttp.ClientSession,
    request: web.Request,
    url: str,
    body: bytes,
    headers: CIMultiDict[str],
) -> AsyncIterator[aiohttp.ClientResponse]:
    """``request`` passed on to ``url`` as it came: its method, body and (already filtered)
    headers, the URL's encoding kept, redirects left to the caller."""
    async with session.request(
        request.method, URL(url, encoded=True), data=body or None, headers=headers,
        allow_redirects=False,
    ) as answer:  # fmt: skip
        yield answer


def relayed_response(
    upstream: aiohttp.ClientResponse, dropped: frozenset[str] = HOP_BY_HOP
) -> web.StreamResponse:
    """An answer carrying ``upstream``'s status and headers, not yet sent."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    response.headers.extend(forwarded_headers(upstream.headers.items(), dropped))
    return response


async def stream_body(
    request: web.Request, upstream: aiohttp.ClientResponse, response: web.StreamResponse
) -> None:
    """Send ``response``'s head, then ``upstream``'s body as it arrives."""
    await response.prepare(request)
    async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
        await response.write(chunk)
    await response.write_eof()
