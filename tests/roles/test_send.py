"""send_judged: one POST after another while the caller's rules say wait, numbered across
the first attempt and tenacity's retries, against a real aiohttp server."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from mhs.roles.http.send import Attempt, send_judged


async def _server(aiohttp_server: Any, statuses: list[int]) -> tuple[str, list[str]]:
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers["Mhs-Attempt"])
        return web.Response(status=statuses[min(len(seen), len(statuses)) - 1])

    app = web.Application()
    app.router.add_post("/", answer)
    server = await aiohttp_server(app)
    return str(server.make_url("/")), seen


async def test_transient_answers_are_sent_again_until_accepted(aiohttp_server: Any) -> None:
    url, seen = await _server(aiohttp_server, [503, 500, 202])
    heard: list[Attempt] = []
    waits: list[tuple[int, float]] = []
    async with aiohttp.ClientSession() as session:
        last = await send_judged(
            session, url, b"body", {}, first=4, next_wait=lambda _: 0.01,
            heard=heard.append, waiting=lambda a, s: waits.append((a.number, s)),
        )  # fmt: skip
    assert seen == ["4", "5", "6"]
    assert [(a.number, a.status, a.outcome.verdict) for a in heard] == [
        (4, 503, "transient"),
        (5, 500, "transient"),
        (6, 202, "accepted"),
    ]
    assert waits == [(4, 0.01), (5, 0.01)]
    assert last == heard[-1]


async def test_the_caller_s_rules_stop_the_retries(aiohttp_server: Any) -> None:
    url, seen = await _server(aiohttp_server, [503])
    async with aiohttp.ClientSession() as session:
        last = await send_judged(
            session, url, b"body", {}, first=1,
            next_wait=lambda attempt: 0.01 if attempt.number < 3 else None,
        )  # fmt: skip
    assert seen == ["1", "2", "3"]
    assert (last.number, last.status, last.outcome.verdict) == (3, 503, "transient")


async def test_a_final_answer_is_not_sent_again(aiohttp_server: Any) -> None:
    url, seen = await _server(aiohttp_server, [403])
    async with aiohttp.ClientSession() as session:
        last = await send_judged(session, url, b"body", {}, first=1, next_wait=lambda _: 0.01)
    assert seen == ["1"]
    assert (last.status, last.outcome.verdict) == (403, "permanent")
