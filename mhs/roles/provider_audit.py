"""The GP Connect provider's audit trail over HTTP: every request it answers is recorded
(refusals too) before the answer goes, and ``GET /audit`` reads the trail back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from mhs.observe.events import Event
from mhs.provider.audit import shown
from mhs.provider.audit_log import AuditLog
from mhs.provider.audit_request import draft_for
from mhs.provider.provider import ProviderAnswer, ProviderRequest
from mhs.roles.common import LOG, json_response, text_error
from mhs.roles.http.fhir import refused
from mhs.ssp import Refusal, provider_outcome

AUDIT = web.AppKey("audit", AuditLog)
# Health, metrics and the trail itself are no GP Connect requests: they are not audited.
UNAUDITED = frozenset({"/healthz", "/healthcheck", "/readyz", "/metrics", "/audit"})


@dataclass(frozen=True, slots=True)
class AuditFacts:
    """What the handler learnt of a request, for its audit entry."""

    request: ProviderRequest | None = None
    answer: ProviderAnswer | None = None
    refusal: Refusal | None = None


FACTS = web.RequestKey("audit_facts", AuditFacts)


async def audit_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the trail for the role's lifetime; a file that cannot be used stops the start."""
    await app[AUDIT].open()
    try:
        yield
    finally:
        await app[AUDIT].close()


@web.middleware
async def audited(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer, then record the request and its answer; if the record cannot be written,
    answer 500 instead: nothing leaves the provider unaudited."""
    if request.path in UNAUDITED:
        return await handler(request)
    at = time.time()
    try:
        response = await handler(request)
    except web.HTTPException as error:
        await _record(request, at, error.status)
        raise
    except Exception:
        # aiohttp answers an unexpected error 500: audited as that.
        await _record(request, at, 500)
        raise
    try:
        await _record(request, at, response.status)
    except OSError as error:
        refusal = Refusal(
            500, "exception", "INTERNAL_SERVER_ERROR", "the audit trail could not be written"
        )
        request.app[LOG].error(Event.PROVIDER_AUDIT_FAILED, reason=str(error))
        return refused(request, Event.PROVIDER_REFUSED, refusal, {}, provider_outcome)
    return response


async def _record(request: web.Request, at: float, status: int) -> None:
    facts = request.get(FACTS) or AuditFacts()
    seen = facts.request or ProviderRequest(
        request.method, request.path, request.raw_path.partition("?")[2], request.headers
    )
    answer = facts.answer
    draft = draft_for(
        seen,
        at=at,
        status=status,
        refusal=answer.refusal if answer else facts.refusal,
        party=answer.party if answer else None,
        interaction=answer.interaction if answer else None,
    )
    await request.app[AUDIT].record(draft)


async def audit_trail(request: web.Request) -> web.Response:
    """``GET /audit[?since=SEQ][&limit=N]``: the entries as stored, and the chain head this
    provider last wrote (or found when it started)."""
    try:
        since = _count(request.query.get("since"), "since", 0)
        limit = _count(request.query.get("limit"), "limit", 1) if "limit" in request.query else None
    except ValueError as error:
        return text_error(400, str(error))
    log = request.app[AUDIT]
    lines = await log.entries(since, limit)
    return json_response(
        {
            "file": str(log.path),
            "head": {"seq": log.head.seq, "hash": log.head.hash},
            "entries": [shown(line) for line in lines],
        }
    )


def _count(value: str | None, name: str, least: int) -> int:
    if value is None:
        return least
    if not value.isdigit() or int(value) < least:
        raise ValueError(f"{name} must be a whole number of at least {least}, got {value[:40]!r}")
    return int(value)
