"""The bad-request corpus (tests/corpus/bad-*.yaml): every request gets its documented
status and error text, nothing is queued or forwarded, and the role stays healthy."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from urllib.parse import urlsplit

import pytest
from yarl import URL

from tests.corpus.requests import Case, Context, load_cases, prepare, text_of
from tests.roles.conftest import Harness

pytestmark = pytest.mark.rabbitmq

CASES = load_cases()
TARGETS = {"outbound": "outbound", "proxy": "spine-proxy", "inbound": "inbound"}
# Events that mean a request got further than it should have.
GOT_THROUGH = (
    "message.queued",
    "gpconnect.forwarded",
    "proxy.forwarded",
    "proxy.fault_injected",
    "provider.answered",
    "provider.refused",
    "inbound.received",
    "inbound.delivered_to_instance",
)


def _context(h: Harness) -> Context:
    provider = h.settings.gpconnect_overrides[h.directory.hosted_mhs.name]
    return Context(credential=h.token, provider_base=provider)


async def _raw(url: str, raw: str) -> tuple[int, str]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(raw.replace("\n", "\r\n").encode("latin-1"))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode("utf-8", "replace")


async def send(h: Harness, case: Case) -> tuple[int, str]:
    """Send ``case`` to its role in ``h``; its status and body text."""
    base = h.url(TARGETS[case.target])
    if case.raw is not None:
        return await _raw(base, text_of(case.raw, _context(h)))
    path, headers, body = prepare(case, _context(h))
    async with h.http.request(
        case.method,
        URL(base + path, encoded=True),
        headers=headers,
        # aiohttp warns about large bytes bodies (they hold the loop while written).
        data=io.BytesIO(body) if body is not None and len(body) > 1_000_000 else body,
        skip_auto_headers=("Content-Type",) if "Content-Type" not in headers else (),
    ) as response:
        return response.status, await response.text(errors="replace")


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_request(corpus_harness: Harness, case: Case) -> None:
    h = corpus_harness
    seen = len(h.logs)
    status, text = await send(h, case)
    assert status == case.status, f"{case.source}: {case.id}: {text[:500]}"
    assert _context(h).fill(case.text) in text, f"{case.source}: {case.id}: {text[:500]}"
    later = [e.get("event") for e in h.logs[seen:]]
    assert not [e for e in later if e in GOT_THROUGH], later
    assert await h.depth(h.settings.outbound_queue) == 0
    for party in h.directory.parties:
        if party.hosted:
            assert await h.depth(h.settings.inbound_queue(party.asid)) == 0
    async with h.http.get(h.url(TARGETS[case.target]) + "/readyz") as ready:
        assert ready.status == 200, await ready.text()


def test_the_corpus_is_big_enough_and_names_are_unique() -> None:
    per_target = Counter(case.target for case in CASES)
    assert sum(per_target.values()) >= 150
    assert all(per_target[t] >= 30 for t in TARGETS), per_target
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.text for c in CASES), "every case says what the error must say"
