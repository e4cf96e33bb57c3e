"""The simulated GP Connect provider on its own, and the directory facts it serves from."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs

from mhs.directory import Directory, generate_topology, load_topology
from mhs.directory.generate import DEFAULT_TOPOLOGY_HEADER, default_topology, topology_yaml
from mhs.gpconnect.interactions import GPCONNECT_INTERACTIONS, service_root
from mhs.provider.records import patients_of
from mhs.runner import Cluster
from mhs.settings import Settings
from mhs.ssp.consumer_jwt import consumer_jwt
from mhs.ssp.nhs_number import is_nhs_number

SEARCH = "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1"
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
STRUCTURED_METADATA = "urn:nhs:names:services:gpconnect:structured:fhir:rest:read:metadata-1"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
NHS = "https://fhir.nhs.uk/Id/nhs-number"


@pytest.fixture
async def provider() -> AsyncIterator[tuple[str, aiohttp.ClientSession, list[Any]]]:
    with capture_logs() as logs:
        cluster = Cluster(Settings(), load_topology(), ephemeral_ports=True)
        await cluster.start(["gp-provider"])
        async with aiohttp.ClientSession() as http:
            yield cluster.urls["gp-provider"], http, logs
        await cluster.stop()


def _headers(interaction: str, to_asid: str = "918000000002", **extra: str) -> dict[str, str]:
    return {
        "Ssp-TraceID": str(uuid.uuid4()),
        "Ssp-From": "918000000001",
        "Ssp-To": to_asid,
        "Ssp-InteractionID": interaction,
        "Authorization": "Bearer " + consumer_jwt(audience="x", ods_code="A80001"),
        **extra,
    }


async def _get(
    provider: tuple[str, aiohttp.ClientSession, list[Any]],
    path: str,
    headers: dict[str, str],
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    url, http, _ = provider
    async with http.request(method, url + path, headers=headers, data=body) as response:
        assert response.headers["Cache-Control"] == "no-store"
        return response.status, orjson.loads(await response.read())


def _code(body: dict[str, Any]) -> str:
    code = body["issue"][0]["details"]["coding"][0]["code"]
    assert isinstance(code, str)
    return code


async def test_both_capability_statements(provider: Any) -> None:
    status, body = await _get(provider, "/A80002/STU3/1/gpconnect/metadata", _headers(METADATA))
    assert (status, body["resourceType"]) == (200, "CapabilityStatement")
    status, body = await _get(
        provider,
        "/A80002/STU3/1/gpconnect/structured/metadata",
        _headers(STRUCTURED_METADATA),
    )
    assert status == 200
    operations = body["rest"][0]["operation"]
    assert [o["definition"]["reference"] for o in operations] == [STRUCTURED]


async def test_patient_search_finds_registered_patients_only(provider: Any) -> None:
    patient = patients_of("A80002")[0]
    path = f"/A80002/STU3/1/gpconnect/Patient?identifier={NHS}|{patient.nhs_number}"
    status, body = await _get(provider, path, _headers(SEARCH))
    assert (status, body["total"]) == (200, 1)
    other = patients_of("A80003")[0].nhs_number
    path = f"/A80002/STU3/1/gpconnect/Patient?identifier={NHS}|{other}"
    status, body = await _get(provider, path, _headers(SEARCH))
    assert (status, body["total"], body["entry"]) == (200, 0, [])


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        ("/Z99999/STU3/1/gpconnect/metadata", {}, (404, "ORGANISATION_NOT_FOUND")),
        ("/A80002/STU3/1/gpconnect/Appointment", {}, (501, "NOT_IMPLEMENTED")),
        ("/A80002/STU3/1/gpconnect/metadata", {"Ssp-TraceID": ""}, (400, "BAD_REQUEST")),
        ("/A80002/STU3/1/gpconnect/metadata", {"Ssp-To": "918000000003"}, (400, "BAD_REQUEST")),
        (
            "/A80002/STU3/1/gpconnect/metadata",
            {"Ssp-InteractionID": SEARCH},
            (400, "BAD_REQUEST"),
        ),
        ("/A80002/STU3/1/gpconnect/metadata", {"Authorization": "Bearer x"}, (400, "BAD_REQUEST")),
        (
            "/A80002/STU3/1/gpconnect/metadata",
            {"Accept": "text/csv"},
            (415, "UNSUPPORTED_MEDIA_TYPE"),
        ),
        ("/A80002/STU3/1/gpconnect/Patient", {"Ssp-InteractionID": SEARCH}, (400, "BAD_REQUEST")),
        (
            f"/A80002/STU3/1/gpconnect/Patient?identifier=https://x|{patients_of('A80002')[0].nhs_number}",
            {"Ssp-InteractionID": SEARCH},
            (400, "INVALID_IDENTIFIER_SYSTEM"),
        ),
        (
            f"/A80002/STU3/1/gpconnect/Patient?identifier={NHS}|1234567890",
            {"Ssp-InteractionID": SEARCH},
            (400, "INVALID_NHS_NUMBER"),
        ),
    ],
)
async def test_refusals(
    provider: Any, path: str, headers: dict[str, str], expected: tuple[int, str]
) -> None:
    status, body = await _get(provider, path, _headers(METADATA) | headers)
    assert (status, _code(body)) == expected
    _, _, logs = provider
    assert [e["status"] for e in logs if e.get("event") == "provider.refused"] == [expected[0]]


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"{", "application/fhir+json", (400, "BAD_REQUEST")),
        (b'{"resourceType": "Patient"}', "application/fhir+json", (422, "INVALID_RESOURCE")),
        (b'{"resourceType": "Parameters"}', "application/fhir+json", (422, "INVALID_PARAMETER")),
        (b"<Parameters/>", "application/fhir+xml", (415, "UNSUPPORTED_MEDIA_TYPE")),
        (None, "application/fhir+json", (400, "INVALID_NHS_NUMBER")),
        ("9000000009", "application/fhir+json", (404, "PATIENT_NOT_FOUND")),
    ],
)
async def test_structured_record_refusals(
    provider: Any, body: bytes | str | None, content_type: str, expected: tuple[int, str]
) -> None:
    if body is None or isinstance(body, str):
        number = body or "9000000008"
        body = orjson.dumps(
            {
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "patientNHSNumber",
                        "valueIdentifier": {"system": NHS, "value": number},
                    }
                ],
            }
        )
    status, answer = await _get(
        provider,
        "/A80002/STU3/1/gpconnect/structured/Patient/$gpc.getstructuredrecord",
        _headers(STRUCTURED, **{"Content-Type": content_type}),
        method="POST",
        body=body,
    )
    assert (status, _code(answer)) == expected


def test_the_default_topology_registers_gp_connect_providers() -> None:
    directory = load_topology()
    provider = directory.gpconnect_provider("A80002")
    assert provider is not None
    assert provider.asid == "918000000002"
    assert provider.gpconnect_endpoint == "http://127.0.0.1:8085"
    assert provider.fqdn == "127.0.0.1"
    assert directory.gpconnect_provider("B80001") is None  # remote practices take no part
    assert directory.gpconnect_provider("NOPE") is None
    last = directory.by_asid("918000000024")
    assert last is not None
    assert STRUCTURED not in last.interactions
    assert set(GPCONNECT_INTERACTIONS) - {STRUCTURED} <= last.interactions
    assert service_root("http://h:1/", "A80002", "structured") == (
        "http://h:1/A80002/STU3/1/gpconnect/structured"
    )


def test_the_packaged_topology_file_is_the_generators_output() -> None:
    path = Path(__file__).parents[2] / "mhs/directory/default-topology.yaml"
    assert path.read_text() == topology_yaml(default_topology(), DEFAULT_TOPOLOGY_HEADER), (
        "regenerate it: python -m mhs.directory"
    )


def test_fqdn_and_gpconnect_endpoint_are_validated() -> None:
    raw = generate_topology(2, 0).model_dump(mode="json")
    raw["mhs"][0]["fqdn"] = "datacentre.example.nhs.uk"
    for instance, model in zip(
        raw["mhs"][0]["instances"], generate_topology(2, 0).mhs[0].instances, strict=True
    ):
        assert model.credential is not None
        instance["credential"] = model.credential.get_secret_value()
    assert Directory(generate_topology(2, 0).model_validate(raw)).by_asid("918000000001").fqdn == (  # type: ignore[union-attr]
        "datacentre.example.nhs.uk"
    )
    for field, bad in (("fqdn", "bad name!"), ("gpconnect_endpoint", "http://x/")):
        broken = {**raw, "mhs": [{**raw["mhs"][0], field: bad}]}
        with pytest.raises(ValueError, match=field):
            generate_topology(2, 0).model_validate(broken)


def test_patients_are_deterministic_and_valid() -> None:
    first = patients_of("A80001")
    assert first == patients_of("A80001")
    assert first != patients_of("A80002")
    assert all(is_nhs_number(p.nhs_number) for p in first)
    assert len({p.nhs_number for p in first}) == len(first)
