"""GP Connect end to end: a hosted instance -> outbound MHS -> Spine proxy -> the simulated
provider serving another hosted practice, and back."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import orjson
import pytest

from mhs.ebxml.safexml import parse_xml
from mhs.gpconnect.fhir import NS_FHIR
from mhs.observe.events import Event
from mhs.provider.records import patients_of
from mhs.ssp.consumer_jwt import consumer_claims, consumer_jwt
from mhs.ssp.jwt_claims import decode_unsigned, encode_unsigned

pytestmark = pytest.mark.rabbitmq

ROLES = ("gp-provider", "spine-proxy", "outbound")
SENDER = "918000000001"  # A80001
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
SEARCH = "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


async def _call(
    h: Any,
    method: str,
    path: str,
    interaction: str,
    *,
    sender: str = SENDER,
    jwt: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[aiohttp.ClientResponse, bytes]:
    sent = {
        "Mhs-Credential": h.token(sender),
        "Ssp-InteractionID": interaction,
        "Authorization": "Bearer " + (jwt or consumer_jwt(audience="https://provider.invalid")),
        **(headers or {}),
    }
    if body is not None:
        sent.setdefault("Content-Type", "application/fhir+json")
    async with h.http.request(
        method, h.url("outbound") + path, headers=sent, data=body
    ) as response:
        return response, await response.read()


def _parameters(nhs_number: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "patientNHSNumber",
                    "valueIdentifier": {"system": NHS_SYSTEM, "value": nhs_number},
                }
            ],
        }
    )


async def test_metadata_search_and_structured_record(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    patient = patients_of("A80002")[1]

    response, body = await _call(h, "GET", "/gpconnect/A80002/metadata", METADATA)
    assert response.status == 200, body
    assert response.headers["Cache-Control"] == "no-store"
    assert orjson.loads(body)["resourceType"] == "CapabilityStatement"

    query = f"identifier={NHS_SYSTEM}|{patient.nhs_number}"
    response, body = await _call(h, "GET", f"/gpconnect/A80002/Patient?{query}", SEARCH)
    assert response.status == 200, body
    bundle = orjson.loads(body)
    assert bundle["total"] == 1
    found = bundle["entry"][0]["resource"]
    assert found["identifier"][0]["value"] == patient.nhs_number
    assert found["name"][0]["family"] == patient.family

    response, body = await _call(
        h,
        "POST",
        "/gpconnect/A80002/Patient/$gpc.getstructuredrecord",
        STRUCTURED,
        body=_parameters(patient.nhs_number),
    )
    assert response.status == 200, body
    record = orjson.loads(body)
    assert record["type"] == "collection"
    kinds = [entry["resource"]["resourceType"] for entry in record["entry"]]
    assert kinds == ["Patient", "Organization", "Practitioner", "List"]

    # Every step was seen by every role, tied together by one trace id per request.
    forwarded = h.events(Event.GPCONNECT_FORWARDED)
    assert [e["status"] for e in forwarded] == [200, 200, 200]
    for event in forwarded:
        trace = event["trace_id"]
        uuid.UUID(trace)
        assert event["from_asid"] == SENDER
        assert event["to_asid"] == "918000000002"
        assert [e for e in h.events(Event.PROXY_FORWARDED) if e["trace_id"] == trace]
        assert [e for e in h.events(Event.PROVIDER_ANSWERED) if e["trace_id"] == trace]


async def test_the_answer_comes_in_xml_when_asked(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    response, body = await _call(h, "GET", "/gpconnect/A80002/metadata?_format=xml", METADATA)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/fhir+xml")
    root = parse_xml(body, "reply")
    assert root.tag == f"{{{NS_FHIR}}}CapabilityStatement"


async def test_requesting_organization_is_filled_with_the_senders_own(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    response, _ = await _call(h, "GET", "/gpconnect/A80002/metadata", METADATA)
    assert response.status == 200
    # The proxy logs the JWT's requesting organisation: the outbound MHS put A80001 there.
    [forwarded] = h.events(Event.PROXY_FORWARDED)
    assert forwarded["from_ods"] == "A80001"


async def test_a_jwt_naming_its_own_organisation_passes_unchanged(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    token = consumer_jwt(audience="https://provider.invalid", ods_code="A80001")
    response, body = await _call(h, "GET", "/gpconnect/A80002/metadata", METADATA, jwt=token)
    assert response.status == 200, body


@pytest.mark.parametrize(
    ("headers", "jwt_ods", "expected"),
    [
        ({"Ssp-From": "918000000002"}, None, (403, "ACCESS_DENIED", "not the ASID of this")),
        ({}, "A80002", (403, "ACCESS_DENIED", "names 'A80002', not A80001")),
        ({"Ssp-TraceID": "trace-me"}, None, (400, "BAD_REQUEST", "is not a UUID")),
        ({"Ssp-To": "918000000003"}, None, (400, "BAD_REQUEST", "is not 918000000002")),
        ({"Mhs-Credential": ""}, None, (401, "ACCESS_DENIED", "Mhs-Credential: <instance")),
        ({"Mhs-Credential": "guess-0000000000000"}, None, (401, "ACCESS_DENIED", "unknown")),
        ({"Authorization": "Bearer a.b.c"}, None, (400, "BAD_REQUEST", "must be unsigned")),
    ],
)
async def test_the_outbound_refuses_to_act_as_someone_else(
    harness_factory: Any,
    headers: dict[str, str],
    jwt_ods: str | None,
    expected: tuple[int, str, str],
) -> None:
    status, token, says = expected
    h = await harness_factory(ROLES)
    jwt = consumer_jwt(audience="https://provider.invalid", ods_code=jwt_ods)
    response, body = await _call(
        h, "GET", "/gpconnect/A80002/metadata", METADATA, jwt=jwt, headers=headers
    )
    assert response.status == status
    issue = orjson.loads(body)["issue"][0]
    assert issue["details"]["coding"][0]["display"] == token
    assert says in issue["diagnostics"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Mhs-Credential")
    assert not h.events(Event.PROXY_FORWARDED)
    assert not h.events(Event.PROXY_REFUSED)


async def test_a_given_trace_id_travels_end_to_end(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    trace = str(uuid.uuid4())
    response, _ = await _call(
        h, "GET", "/gpconnect/A80002/metadata", METADATA, headers={"Ssp-TraceID": trace}
    )
    assert response.status == 200
    assert [e["trace_id"] for e in h.events(Event.PROVIDER_ANSWERED)] == [trace]


async def test_spine_refusals_come_back_through_the_outbound(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    # A80009 is in another region: no data sharing agreement with A80001.
    response, body = await _call(h, "GET", "/gpconnect/A80009/metadata", METADATA)
    assert response.status == 403
    display = orjson.loads(body)["issue"][0]["details"]["coding"][0]["display"]
    assert display == "FOT_CHECK_FAILED_MESSAGESENDER_918000000001_MESSAGERECEIVER_918000000009"
    # A80024 does not serve structured records.
    response, body = await _call(
        h,
        "POST",
        "/gpconnect/A80024/Patient/$gpc.getstructuredrecord",
        STRUCTURED,
        sender="918000000017",
        body=_parameters(patients_of("A80024")[0].nhs_number),
    )
    assert response.status == 403
    assert b"PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_918000000024" in body


async def test_provider_errors_come_back_through_proxy_and_outbound(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    response, body = await _call(
        h,
        "POST",
        "/gpconnect/A80002/Patient/$gpc.getstructuredrecord",
        STRUCTURED,
        body=_parameters("9000000009"),  # valid, but not registered at A80002
    )
    assert response.status == 404
    coding = orjson.loads(body)["issue"][0]["details"]["coding"][0]
    assert coding["code"] == "PATIENT_NOT_FOUND"
    assert coding["system"] == "https://fhir.nhs.uk/STU3/ValueSet/Spine-ErrorOrWarningCode-1"
    assert [e["status"] for e in h.events(Event.PROXY_FORWARDED)] == [404]


async def test_the_credential_never_leaves_or_reaches_the_logs(harness_factory: Any) -> None:
    h = await harness_factory(ROLES)
    credential = h.token(SENDER)
    await _call(h, "GET", "/gpconnect/A80002/metadata", METADATA)
    await _call(h, "GET", "/gpconnect/A80002/metadata", METADATA, headers={"Ssp-From": "1"})
    await _call(
        h, "GET", "/gpconnect/A80002/metadata", METADATA, headers={"Mhs-Credential": "x" * 20}
    )
    assert h.logs
    assert credential not in orjson.dumps(h.logs, default=str).decode()


def test_consumer_claims_round_trip() -> None:
    claims = consumer_claims(audience="https://a", ods_code="A80001")
    assert decode_unsigned(encode_unsigned(claims)) == claims
    assert "requesting_organization" not in consumer_claims(audience="https://a")
