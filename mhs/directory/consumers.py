"""The default topology's other consumer kinds: a CMA system, a TIE and two portals.

They are GP Connect consumers of the datacentre's practices, hosted here (each has a
credential) so testers can send as them, and they query PDS through Spine synchronously.
Their inbound endpoints are illustrative: accredited for GP Connect and the synchronous PDS
query only, they are never sent an ebXML message, and they sit on no local port that
``serve all`` would have to open.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mhs.gpconnect.interactions import GPCONNECT_INTERACTIONS

CMA_ODS = "C80001"
TIE_ODS = "R8T01"
HOST_PORTAL = ("P80001", ("P80002", "P80003"))
# Spine's synchronous PDS retrieval: answered in the same exchange, it needs no endpoint.
PDS_QUERY = "QUPA_IN040000UK32"
ORG_PORTAL = ("Q80001", ("Q80002", "Q80003"))
# Each kind shares data with some datacentre practices and not with the rest (A80009-A80024
# and the remote MHS's practices), so every kind has allowed and refused pairs.
AGREEMENTS = (
    (CMA_ODS, "A80001"),
    (TIE_ODS, "A80002"),
    (HOST_PORTAL[0], "A80003"),
    (ORG_PORTAL[0], "A80004"),
    (ORG_PORTAL[1][0], "A80004"),
    (ORG_PORTAL[1][1], "A80005"),
)


def dev_credential(key: str) -> str:
    """The packaged topology's credential for ``key``: deterministic, so the default file is
    reproducible; for development only."""
    return "dev-" + hashlib.sha256(f"mhs-simulator:{key}".encode()).hexdigest()[:32]


def _instance(name: str, ods: str, asid: str, *, party_key: bool = True) -> dict[str, Any]:
    instance: dict[str, Any] = {"name": name, "ods_code": ods, "asid": asid}
    if party_key:
        instance["party_key"] = f"{ods}-{asid[-7:]}"
    instance["credential"] = dev_credential(asid)
    instance["interactions"] = [*GPCONNECT_INTERACTIONS, PDS_QUERY]
    return instance


def _mhs(name: str, kind: str, instances: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "hosted": True,
        "endpoint": f"https://{name}.consumers.invalid/reliablemessaging",
        **extra,
        "instances": instances,
    }


def _portal(name: str, rule: str, ods: tuple[str, tuple[str, ...]], asid: int) -> dict[str, Any]:
    host, participants = ods
    members = (host,) if rule == "host" else (host, *participants)
    instances = [
        _instance(f"Shared care record portal ({code})", code, f"{asid + n:012d}")
        for n, code in enumerate(members, start=1)
    ]
    block = {"host": host, "asid_rule": rule, "participants": list(participants)}
    return _mhs(name, "portal", instances, portal=block)


def consumer_kinds() -> list[dict[str, Any]]:
    """The CMA, TIE and portal entries of the default topology."""
    tie_systems = ("Clinical portal", "Electronic patient record", "Theatres system")
    tie = [
        _instance(system, TIE_ODS, f"9480{n:08d}", party_key=False)
        for n, system in enumerate(tie_systems, start=1)
    ]
    return [
        _mhs("cma", "cma", [_instance("Urgent care system", CMA_ODS, "938000000001")]),
        # A TIE's systems may share one party key; each has its own ASID.
        _mhs("trust-tie", "tie", tie, party_key=f"{TIE_ODS}-0000300"),
        _portal("portal-host-rule", "host", HOST_PORTAL, 958000000000),
        _portal("portal-per-organisation", "per-organisation", ORG_PORTAL, 968000000000),
    ]
