"""The SDS simulator role over real roles on port 0: what an NHS adaptor's SDS client asks,
and what it must be told when it asks wrongly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import isodate
import pytest
import yaml

import mhs.directory
from mhs.directory import load_topology
from mhs.directory.catalogue import set_reliability
from mhs.gpconnect.interactions import service_root
from tests.roles.conftest import Harness

ROLES = ("inbound", "gp-provider", "spine-proxy", "sds")
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
INTERACTION = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
PARTY_KEY = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"
RELIABILITY = "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-ReliabilityConfiguration"
GPC_STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
SCR_UPLOAD = "urn:nhs:names:services:psis:REPC_IN150016UK05"
DEFAULT_TOPOLOGY = Path(mhs.directory.__file__).with_name("default-topology.yaml")


def _param(name: str, system: str, value: str) -> str:
    # Quoted whole, `|` and all, as the MHS adaptor's SDS client sends it.
    return f"{name}={quote(f'{system}|{value}')}"


async def _get(h: Harness, path: str, *params: str, **headers: str) -> tuple[int, Any, Any]:
    url = f"{h.url('sds')}/{path}" + ("?" + "&".join(params) if params else "")
    async with h.http.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None), response.headers


def _identifier(resource: dict[str, Any], system: str) -> str:
    values = [i["value"] for i in resource["identifier"] if i["system"].endswith(system)]
    assert len(values) == 1, resource["identifier"]
    return str(values[0])


def _reliability(endpoint: dict[str, Any]) -> dict[str, Any]:
    [extension] = [e for e in endpoint["extension"] if e["url"] == RELIABILITY]
    return {e["url"]: e.get("valueString", e.get("valueInteger")) for e in extension["extension"]}


async def _lookup(h: Harness, ods: str, interaction: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The MHS adaptor's two steps: the Device at ``ods``, then its party key's Endpoint."""
    status, devices, _ = await _get(
        h,
        "Device",
        _param("organization", ODS, ods),
        _param("identifier", INTERACTION, interaction),
    )
    assert status == 200, devices
    assert devices["resourceType"] == "Bundle"
    assert devices["type"] == "searchset"
    assert devices["total"] == 1, devices
    device = devices["entry"][0]["resource"]
    party_key = _identifier(device, "/nhsMhsPartyKey")
    status, endpoints, _ = await _get(
        h,
        "Endpoint",
        _param("identifier", INTERACTION, interaction),
        _param("identifier", PARTY_KEY, party_key),
    )
    assert status == 200, endpoints
    assert endpoints["total"] == 1, endpoints
    return device, endpoints["entry"][0]["resource"]


@pytest.fixture
async def sds(harness_factory: Callable[..., Any]) -> Harness:
    harness: Harness = await harness_factory(ROLES)
    return harness


async def test_messaging_lookup_names_the_inbound_mhs_and_the_directorys_reliability(
    sds: Harness,
) -> None:
    device, endpoint = await _lookup(sds, "A80001", SCR_UPLOAD)
    party = sds.directory.by_asid("918000000001")
    assert [e["total"] for e in sds.events("sds.answered")] == [1, 1]
    assert party is not None
    assert _identifier(device, "/nhsSpineASID") == party.asid
    assert device["owner"]["identifier"] == {"system": ODS, "value": "A80001"}
    # Where this deployment's inbound MHS really listens (port 0, wired through settings).
    assert endpoint["address"] == sds.url("inbound") + "/reliablemessaging"
    assert _identifier(endpoint, "/nhsMhsPartyKey") == party.party_key
    assert _identifier(endpoint, "/nhsMhsCPAId") == party.cpa_id
    assert _identifier(endpoint, "/nhsMhsFQDN") == party.fqdn
    interaction = sds.directory.interaction("REPC_IN150016UK05")
    assert interaction is not None
    rules = interaction.reliability
    assert _reliability(endpoint) == {
        "nhsMHSSyncReplyMode": rules.sync_reply_mode,
        "nhsMHSRetryInterval": isodate.duration_isoformat(rules.retry_interval),
        "nhsMHSRetries": rules.retries,
        "nhsMHSPersistDuration": isodate.duration_isoformat(rules.persist_duration),
        "nhsMHSDuplicateElimination": rules.duplicate_elimination,
        "nhsMHSAckRequested": rules.ack_requested,
        "nhsMHSActor": "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH",
    }


async def test_express_interaction_carries_its_own_reliability(sds: Harness) -> None:
    _, endpoint = await _lookup(sds, "A80002", "urn:nhs:names:services:psisquery:QUPC_IN160101UK05")
    reliability = _reliability(endpoint)
    assert reliability["nhsMHSAckRequested"] == "never"
    assert reliability["nhsMHSPersistDuration"] == "PT4M"
    assert "nhsMHSActor" not in reliability


async def test_gpconnect_lookup_names_the_practices_service_root(sds: Harness) -> None:
    device, endpoint = await _lookup(sds, "A80002", GPC_STRUCTURED)
    assert _identifier(device, "/nhsSpineASID") == "918000000002"
    assert endpoint["address"] == service_root(sds.url("gp-provider"), "A80002", "structured")
    assert not any(e["url"] == RELIABILITY for e in endpoint["extension"])
    # The GP Connect consumer adaptor's way: organization and interaction, then the address
    # and nhsMHSId of the one Endpoint.
    status, bundle, _ = await _get(
        sds,
        "Endpoint",
        _param("organization", ODS, "A80002"),
        _param("identifier", INTERACTION, GPC_STRUCTURED),
    )
    assert status == 200
    assert [e["resource"]["address"] for e in bundle["entry"]] == [endpoint["address"]]
    assert _identifier(bundle["entry"][0]["resource"], "/nhsMHSId") == "S918000000002"


async def test_spines_own_services_are_found_at_the_spine_proxy(sds: Harness) -> None:
    spine = sds.directory.spine
    assert spine is not None
    device, endpoint = await _lookup(
        sds, spine.ods_code, "urn:nhs:names:services:psisquery:QUPC_IN160101UK05"
    )
    assert _identifier(device, "/nhsSpineASID") == spine.asid
    assert endpoint["address"] == sds.url("spine-proxy") + "/reliablemessaging/queryrequest"
    assert endpoint["managingOrganization"]["identifier"]["value"] == spine.ods_code


async def test_endpoint_by_organization_and_interaction(sds: Harness) -> None:
    status, bundle, _ = await _get(
        sds,
        "Endpoint",
        _param("organization", ODS, "A80003"),
        _param("identifier", INTERACTION, SCR_UPLOAD),
    )
    assert status == 200
    assert bundle["total"] == 1
    assert _identifier(bundle["entry"][0]["resource"], "/nhsMhsPartyKey") == "A80003-0000003"


@pytest.mark.parametrize(
    ("ods", "interaction"),
    [("Z99999", SCR_UPLOAD), ("A80001", "urn:nhs:names:services:psis:NOPE_IN000000UK01")],
)
async def test_nothing_found_is_an_empty_bundle(sds: Harness, ods: str, interaction: str) -> None:
    status, bundle, _ = await _get(
        sds,
        "Device",
        _param("organization", ODS, ods),
        _param("identifier", INTERACTION, interaction),
    )
    assert status == 200
    assert bundle["resourceType"] == "Bundle"
    assert bundle["total"] == 0
    assert bundle["entry"] == []


async def test_a_manufacturer_is_accepted_but_does_not_narrow(sds: Harness) -> None:
    # As the GP Connect consumer adaptor looks up its own ASID (GPC_SUPPLIER_ODS_CODE); the
    # topology records no manufacturer, so the criterion is not applied.
    status, bundle, _ = await _get(
        sds,
        "Device",
        _param("organization", ODS, "A80001"),
        _param("identifier", INTERACTION, GPC_STRUCTURED),
        _param("manufacturing-organization", ODS, "X26"),
    )
    assert status == 200
    assert bundle["total"] == 1
    assert _identifier(bundle["entry"][0]["resource"], "/nhsSpineASID") == "918000000001"


def _diagnostics(outcome: dict[str, Any]) -> str:
    assert outcome["resourceType"] == "OperationOutcome", outcome
    [issue] = outcome["issue"]
    assert issue["details"]["coding"][0]["code"] == "BAD_REQUEST"
    return str(issue["diagnostics"])


async def test_missing_required_parameters_are_named(sds: Harness) -> None:
    status, outcome, _ = await _get(sds, "Device", _param("identifier", INTERACTION, SCR_UPLOAD))
    assert status == 400
    [refused] = sds.events("sds.refused")
    assert refused["status"] == 400
    assert refused["path"] == "/Device"
    assert "'organization'" in refused["detail"]
    assert "'organization'" in _diagnostics(outcome)
    assert ODS in _diagnostics(outcome)
    status, outcome, _ = await _get(sds, "Device", _param("organization", ODS, "A80001"))
    assert status == 400
    assert "'identifier'" in _diagnostics(outcome)
    assert INTERACTION in _diagnostics(outcome)
    status, outcome, _ = await _get(sds, "Endpoint", _param("organization", ODS, "A80001"))
    assert status == 400
    assert "combinations" in _diagnostics(outcome)


@pytest.mark.parametrize(
    "bad",
    [
        "identifier=REPC_IN150016UK05",  # no system
        _param("identifier", "https://fhir.nhs.uk/Id/nhsMhsCPAId", "S918000000001"),
        _param("organization", "https://example.org/ods", "A80001"),
        _param("manufacturing-organization", PARTY_KEY, "X26"),
        "organisation=" + quote(f"{ODS}|A80001"),  # not a parameter SDS has
    ],
)
async def test_wrong_shaped_parameters_are_refused(sds: Harness, bad: str) -> None:
    good = _param("identifier", INTERACTION, SCR_UPLOAD)
    status, outcome, _ = await _get(sds, "Device", _param("organization", ODS, "A80001"), good, bad)
    assert status == 400
    name = bad.partition("=")[0]
    assert f"'{name}'" in _diagnostics(outcome)


async def test_accept_and_correlation_headers(sds: Harness) -> None:
    device = (_param("organization", ODS, "A80001"), _param("identifier", INTERACTION, SCR_UPLOAD))
    correlation = "0B0E8E12-4C1A-4E61-9A2C-1E1D6B7D2F00"
    status, _, headers = await _get(
        sds, "Device", *device, Accept="application/json", **{"X-Correlation-ID": correlation}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["X-Correlation-ID"] == correlation
    status, _, headers = await _get(sds, "Device", *device)
    assert headers["Content-Type"].startswith("application/fhir+json")
    status, outcome, _ = await _get(sds, "Device", *device, Accept="application/xml")
    assert status == 406
    assert outcome["resourceType"] == "OperationOutcome"
    status, outcome, headers = await _get(sds, "Device", *device, **{"X-Correlation-ID": "abc"})
    assert status == 400
    assert headers["X-Correlation-ID"] != "abc"
    assert outcome["id"] == headers["X-Correlation-ID"]
    assert "X-Correlation-ID" in _diagnostics(outcome)


async def test_other_paths_and_methods(sds: Harness) -> None:
    status, outcome, _ = await _get(sds, "Patient")
    assert status == 404
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "NO_RECORD_FOUND"
    async with sds.http.post(sds.url("sds") + "/Device") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET"
    status, ready, _ = await _get(sds, "readyz")
    assert status == 200
    assert ready["role"] == "sds"


async def test_a_topologys_own_reliability_is_served(
    harness_factory: Callable[..., Any], tmp_path: Path
) -> None:
    raw = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    set_reliability(raw, "REPC_IN150016UK05", retries=7, retry_interval="PT3S")
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(raw))
    h: Harness = await harness_factory(("inbound", "sds"), directory=load_topology(path))
    _, endpoint = await _lookup(h, "A80001", SCR_UPLOAD)
    assert _reliability(endpoint)["nhsMHSRetries"] == 7
    assert _reliability(endpoint)["nhsMHSRetryInterval"] == "PT3S"
