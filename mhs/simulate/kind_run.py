"""``mhs simulate --topology-kind``: GP Connect requests from each consumer kind through the
outbound MHS, the Spine proxy and the provider, counted per kind against the directory's
expectations and the provider's audit trail. Consumers find each provider's ASID in the
SDS simulator first (the ``sds`` role), as real ones must, and send it as ``Ssp-To``. Each
consumer system also queries PDS through Spine (mhs.simulate.kind_messages)."""

from __future__ import annotations

import asyncio
import re
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from mhs.broker import Broker
from mhs.broker.factory import broker_for
from mhs.directory import Directory
from mhs.messages.queues import delete_namespace_queues
from mhs.provider.records import patients_of
from mhs.runner import Cluster, RoleName
from mhs.settings import Settings
from mhs.simulate.kind_messages import pds_queries
from mhs.simulate.kind_plan import METADATA, KindShot, plan_kinds
from mhs.simulate.sds_lookup import ProviderRoute, SdsLookupFailed, find_provider
from mhs.ssp.consumer_jwt import consumer_jwt
from mhs.ssp.nhs_number import NHS_NUMBER_SYSTEM
from mhs.ssp.outcome import outcome_token

ROLES: tuple[RoleName, ...] = ("gp-provider", "spine-proxy", "sds", "outbound")
# How a refusal's diagnostics (mhs.ssp.origin) say why a sender may not request.
_DENIALS = (
    ("does not participate", "not a participant of the portal"),
    ("never the provisioning", "another organisation's ASID"),
)


@dataclass
class KindTally:
    """What became of one kind's requests."""

    sent: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0
    audited: int = 0
    wrong_origin: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "refused": sum(self.refused.values()),
            "refusal_reasons": dict(self.refused.most_common()),
            "unexpected_outcomes": self.unexpected,
            "audited": self.audited,
            "wrong_originating_organisation": self.wrong_origin,
        }


@dataclass(frozen=True, slots=True)
class _Sent:
    shot: KindShot
    trace_id: str
    user_id: str
    status: int
    reason: str | None


def _request(shot: KindShot) -> tuple[str, str]:
    """The outbound path and query of ``shot``'s FHIR request."""
    ods = shot.provider.ods_code
    if shot.interaction == METADATA:
        return f"/gpconnect/{ods}/metadata", ""
    patient = patients_of(ods)[0]
    return f"/gpconnect/{ods}/Patient", f"identifier={NHS_NUMBER_SYSTEM}|{patient.nhs_number}"


async def _routes(
    session: aiohttp.ClientSession, sds: str, shots: list[KindShot]
) -> dict[tuple[str, str], ProviderRoute | str]:
    """Each provider the shots ask, looked up in SDS once, as a consumer caches it: its route,
    or why SDS named none."""
    routes: dict[tuple[str, str], ProviderRoute | str] = {}
    for key in sorted({(s.provider.ods_code, s.interaction) for s in shots}):
        try:
            routes[key] = await find_provider(session, sds, *key)
        except SdsLookupFailed as error:
            routes[key] = str(error)
    return routes


async def _send(
    session: aiohttp.ClientSession,
    outbound: str,
    directory: Directory,
    shot: KindShot,
    *,
    n: int,
    route: ProviderRoute | str,
) -> _Sent:
    trace_id, user_id = str(uuid.uuid4()), f"SIM{n:06d}"
    if isinstance(route, str):
        return _Sent(shot, trace_id, user_id, 0, f"SDS: {route}")
    jwt = consumer_jwt(
        audience="https://provider.invalid",
        ods_code=shot.named,
        organization_name=f"Organisation {shot.named}",
        user_id=user_id,
    )
    path, query = _request(shot)
    headers = {
        "Mhs-Credential": directory.credential_for(shot.sender.asid) or "",
        "Ssp-InteractionID": shot.interaction,
        "Ssp-TraceID": trace_id,
        # The provider's ASID as SDS named it: the outbound MHS refuses one that is not.
        "Ssp-To": route.asid,
        "Authorization": f"Bearer {jwt}",
    }
    params = {"identifier": query.partition("=")[2]} if query else None
    async with session.get(outbound + path, params=params, headers=headers) as response:
        body = await response.read()
    reason = None if response.status == 200 else f"{_reason(body)} ({response.status})"
    return _Sent(shot, trace_id, user_id, response.status, reason)


def _reason(body: bytes) -> str:
    """An OperationOutcome's token with its ASIDs masked, so that like refusals add up."""
    try:
        outcome = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:80].decode(errors="replace")
    said = outcome_token(outcome) or "?"
    if said == "ACCESS_DENIED":
        # Through our outbound MHS the origin rule is always its to apply first: it refuses
        # before forwarding (the SSP's own check is for consumers that bypass it).
        diagnostics = str(outcome["issue"][0].get("diagnostics", ""))
        why = next((w for k, w in _DENIALS if k in diagnostics), "another organisation")
        return f"outbound MHS: ACCESS_DENIED ({why})"
    return re.sub(r"[0-9]{12}", "<ASID>", said)


async def _audit(session: aiohttp.ClientSession, provider: str) -> dict[str, dict[str, Any]]:
    """The provider's audit entries by trace id."""
    async with session.get(provider + "/audit") as response:
        response.raise_for_status()
        entries = orjson.loads(await response.read())["entries"]
    return {e["trace_id"]: e for e in entries if isinstance(e, dict) and e.get("trace_id")}


def _tally(sent: list[_Sent], audit: dict[str, dict[str, Any]]) -> dict[str, KindTally]:
    kinds: dict[str, KindTally] = {}
    for item in sent:
        tally = kinds.setdefault(item.shot.kind, KindTally())
        tally.sent += 1
        accepted = item.status == 200
        if accepted:
            tally.accepted += 1
        else:
            tally.refused[item.reason or str(item.status)] += 1
        if accepted != (item.shot.expect == "accepted"):
            tally.unexpected += 1
        entry = audit.get(item.trace_id)
        if entry is None:
            continue
        tally.audited += 1
        organisation = (entry.get("organisation") or {}).get("ods_code")
        practitioner = (entry.get("practitioner") or {}).get("sds_user_id")
        if organisation != item.shot.originating or practitioner != item.user_id:
            tally.wrong_origin += 1
    return kinds


async def simulate_kinds(
    settings: Settings, directory: Directory, kinds: tuple[str, ...], concurrency: int = 32
) -> dict[str, Any]:
    """Send every planned request of ``kinds`` and return the per-kind summary."""
    shots = plan_kinds(directory, kinds)
    with tempfile.TemporaryDirectory(prefix="mhs-simulate-audit-") as audit_dir:
        # A fresh trail, so this run's entries are the only ones counted, and queues of
        # this run's own, removed after it.
        prefix = f"{settings.queue_prefix}sim-{uuid.uuid4().hex[:8]}."
        settings = settings.model_copy(
            update={"audit_dir": Path(audit_dir), "queue_prefix": prefix, "shutdown_timeout_s": 5.0}
        )
        cluster = Cluster(settings, directory, ephemeral_ports=True)
        await cluster.start(ROLES)
        routes: dict[tuple[str, str], ProviderRoute | str] = {}
        try:
            async with aiohttp.ClientSession() as session:
                gate = asyncio.Semaphore(concurrency)

                routes = await _routes(session, cluster.urls["sds"], shots)

                async def one(n: int, shot: KindShot) -> _Sent:
                    route = routes[(shot.provider.ods_code, shot.interaction)]
                    async with gate:
                        return await _send(
                            session, cluster.urls["outbound"], directory, shot, n=n, route=route
                        )

                sent = await asyncio.gather(*(one(n, s) for n, s in enumerate(shots)))
                audit = await _audit(session, cluster.urls["gp-provider"])
                pds = await pds_queries(session, cluster.urls["outbound"], directory, kinds)
        finally:
            await _remove_queues(settings, directory, cluster)
            await cluster.stop()
    per_kind = _tally(list(sent), audit)
    return {
        "sds_lookups": len(routes),
        "sds_unanswered": sum(isinstance(route, str) for route in routes.values()),
        "kinds": {
            kind: {**per_kind[kind].as_dict(), "pds_queries": pds.get(kind, {})}
            for kind in kinds
            if kind in per_kind
        },
    }


async def _remove_queues(settings: Settings, directory: Directory, cluster: Cluster) -> None:
    client: Broker = cluster.shared_broker or broker_for(settings, "simulate-kinds")
    if cluster.shared_broker is None:
        await client.start()
    try:
        await delete_namespace_queues(client, settings, directory)
    finally:
        if cluster.shared_broker is None:
            await client.stop()


def kinds_succeeded(summary: dict[str, Any]) -> bool:
    """Every request ended as the directory says, each accepted one was audited, no audit
    entry names the wrong originating organisation or practitioner, and every PDS query was
    answered, to the system that asked."""
    return all(
        k["unexpected_outcomes"] == 0
        and k["wrong_originating_organisation"] == 0
        and k["audited"] == k["accepted"]
        and k.get("pds_queries", {}).get("answered_to_sender")
        == k.get("pds_queries", {}).get("sent")
        for k in summary["kinds"].values()
    )
