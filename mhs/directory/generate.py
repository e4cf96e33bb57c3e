"""Generated topologies: the shipped default and the sizes simulations and benchmarks ask for."""

from __future__ import annotations

from typing import Any

import yaml

from mhs.directory.catalogue import CATALOGUE, SPINE
from mhs.directory.consumers import AGREEMENTS, consumer_kinds, dev_credential
from mhs.directory.model import Interaction, Topology
from mhs.gpconnect.interactions import GPCONNECT_INTERACTIONS

STRUCTURED_RECORD = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
DEFAULT_TOPOLOGY_HEADER = """\
# MHS Simulator default topology: a supplier datacentre hosting 24 GP practices behind one
# MHS endpoint, and a second MHS with 8 remote practices. Practices share data within their
# region of eight (agreement_groups) and not across regions. Spine itself receives its own
# services (the SCR), answered by the Spine proxy. Credentials are for development only.
# GP Connect's other consumer kinds follow (docs/topologies.md): a CMA system, a Trust
# Integration Engine and two portals, one per ASID rule; each shares data with a few
# datacentre practices (agreements) and with no other.
# Copy this file, edit it and pass it with --topology FILE (or MHS_TOPOLOGY).
# Endpoints name this host's ports ({inbound_port} is MHS_INBOUND_PORT, and so on; {scheme}
# is https when MHS_TLS_* is set), so moving a port moves them; write a URL to pin one.
"""

REGION_SIZE = 8
HOSTED_MHS = "datacentre"
REMOTE_MHS = "remote"


def hosted_ods(index: int) -> str:
    return f"A{80000 + index}"


def remote_ods(index: int) -> str:
    return f"B{80000 + index}"


def _hosted_instance(
    n: int, hosted: int, *, shared_party_key: bool, gpconnect: bool
) -> dict[str, Any]:
    ods = hosted_ods(n)
    interactions: tuple[str, ...] = ("*",)
    gpc = tuple(GPCONNECT_INTERACTIONS) if gpconnect else ()
    if n == hosted:
        interactions = ("*", "!RCMR_IN030000UK06")
        gpc = tuple(i for i in gpc if i != STRUCTURED_RECORD)
    instance: dict[str, Any] = {
        "name": f"Hosted practice {n}",
        "ods_code": ods,
        "asid": f"9180{n:08d}",
        "credential": dev_credential(ods),
        "interactions": list(interactions + gpc),
    }
    if not shared_party_key:
        instance["party_key"] = f"{ods}-{n:07d}"
    return instance


def _remote_instance(n: int, remote: int) -> dict[str, Any]:
    interactions: tuple[str, ...] = ("*",)
    if n == remote and remote > 1:
        interactions = ("*", "!COPC_IN000001UK01")
    return {
        "name": f"Remote practice {n}",
        "ods_code": remote_ods(n),
        "asid": f"9280{n:08d}",
        "interactions": list(interactions),
    }


def _regions(hosted: int, remote: int) -> list[list[str]]:
    """Practices in regions of eight (remote ones dealt round the regions): everyone within a
    region shares data, nobody across regions does."""
    regions = max(1, (hosted + REGION_SIZE - 1) // REGION_SIZE)
    groups: list[list[str]] = [[] for _ in range(regions)]
    for n in range(1, hosted + 1):
        groups[(n - 1) // REGION_SIZE].append(hosted_ods(n))
    for n in range(1, remote + 1):
        groups[(n - 1) % regions].append(remote_ods(n))
    return [group for group in groups if len(group) > 1]


def generate_topology(
    hosted: int = 24,
    remote: int = 8,
    *,
    shared_party_key: bool = False,
    hosted_endpoint: str = "{scheme}://{host}:{inbound_port}/reliablemessaging",
    remote_endpoint: str = "{scheme}://{host}:{remote_inbound_port}/reliablemessaging",
    hosted_gpconnect: str | None = "{scheme}://{host}:{gp_provider_port}",
) -> Topology:
    """A supplier datacentre of ``hosted`` practices and a second MHS of ``remote`` ones.

    Practices are grouped into regions of eight; everyone within a region shares data,
    nobody across regions does, so both kinds of pair exist. The last hosted practice is
    not accredited to send GP2GP EHR extracts, and the last remote one cannot receive
    large-message fragments, so the SSP's accreditation checks have work to do too.

    Hosted practices are GP Connect consumers and providers (their provider service roots
    live under ``hosted_gpconnect``), except that the last one cannot send or serve
    structured records; remote practices take no part in GP Connect.
    """
    if hosted < 2:
        raise ValueError("a topology needs at least two hosted instances")
    hosted_mhs: dict[str, Any] = {
        "name": HOSTED_MHS,
        "hosted": True,
        "endpoint": hosted_endpoint,
        "instances": [
            _hosted_instance(
                n, hosted, shared_party_key=shared_party_key, gpconnect=bool(hosted_gpconnect)
            )
            for n in range(1, hosted + 1)
        ],
    }
    if hosted_gpconnect:
        hosted_mhs["gpconnect_endpoint"] = hosted_gpconnect
    if shared_party_key:
        hosted_mhs["party_key"] = "YGA01-0000100"
    mhs: list[dict[str, Any]] = [hosted_mhs]
    if remote:
        mhs.append(
            {
                "name": REMOTE_MHS,
                "hosted": False,
                "endpoint": remote_endpoint,
                "party_key": "YGB01-0000200",
                "instances": [_remote_instance(n, remote) for n in range(1, remote + 1)],
            }
        )
    return Topology.model_validate(
        {
            "mhs": mhs,
            "spine": SPINE,
            "agreement_groups": _regions(hosted, remote),
        }
    )


def default_topology() -> Topology:
    """The packaged default: ``generate_topology()`` plus the other consumer kinds."""
    data = _dumped(generate_topology())
    data["mhs"] += consumer_kinds()
    data["agreements"] = [list(pair) for pair in AGREEMENTS]
    return Topology.model_validate(data)


def topology_yaml(topology: Topology, header: str = "") -> str:
    """``topology`` as a topology file, credentials written out."""
    data = _dumped(topology)
    # Only what differs from the built-in catalogue is written; the rest comes with it.
    data["interactions"] = {
        name: entry
        for name, entry in data["interactions"].items()
        if name not in CATALOGUE
        or Interaction.model_validate(CATALOGUE[name]) != topology.interactions[name]
    }
    if not data["interactions"]:
        del data["interactions"]
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _dumped(topology: Topology) -> dict[str, Any]:
    """``topology`` as plain data, credentials written out."""
    data = topology.model_dump(mode="json", exclude_none=True)
    for mhs, model in zip(data["mhs"], topology.mhs, strict=True):
        for instance, source in zip(mhs["instances"], model.instances, strict=True):
            if source.credential is not None:
                instance["credential"] = source.credential.get_secret_value()
    return data
