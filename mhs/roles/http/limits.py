"""The request cap (MHS_MAX_REQUEST_BYTES), enforced the same way by every role."""

from __future__ import annotations

from aiohttp import web


class TooLarge(Exception):
    """The request body is over the cap; each role answers in its own form."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the {limit:,}-byte limit")
        self.limit = limit


async def read_capped(request: web.Request) -> bytes:
    """The whole body, or TooLarge: refused on its Content-Length before reading when it
    declares one, else as soon as the bytes read pass the cap."""
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(limit)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(limit) from None
