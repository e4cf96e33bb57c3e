"""The SSP's checks: each refusal as Spine words it, and the documented order."""

from __future__ import annotations

import uuid
from dataclasses import replace

import orjson
import pytest

from mhs.directory import Directory, load_topology
from mhs.ssp import (
    CHECK_ORDER,
    CheckContext,
    ClientCertificate,
    FhirCall,
    Refusal,
    SspRequest,
    check_request,
    operation_outcome,
)
from mhs.ssp.consumer_jwt import consumer_jwt
from mhs.ssp.outcome import outcome_token

TRACE = str(uuid.uuid4())
GOOD = SspRequest(TRACE, "918000000001", "918000000002", "RCMR_IN010000UK05")
ROOT = "http://127.0.0.1:8085/A80002/STU3/1/gpconnect"
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
SEARCH = "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
# Tokens are made when the module is read and checked minutes later in a long run, so the
# checks' clock is fixed to when they were made.
NOW = 1_800_000_000
AT_NOW = CheckContext(now=lambda: NOW)


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_topology()


def _fhir(
    target: str = f"{ROOT}/metadata",
    method: str = "GET",
    query: str = "",
    body: bytes = b"",
    **jwt: str,
) -> FhirCall:
    token = consumer_jwt(audience=ROOT, ods_code="A80001", issued_at=NOW, **jwt)
    return FhirCall(method, target, query, f"Bearer {token}", body)


def _gpc(interaction: str = METADATA, **changes: object) -> SspRequest:
    base = SspRequest(TRACE, "918000000001", "918000000002", interaction, fhir=_fhir())
    return replace(base, **changes)  # type: ignore[arg-type]


def _refusal(directory: Directory, request: SspRequest) -> Refusal:
    refusal = check_request(directory, request, AT_NOW)
    assert refusal is not None, "the request passed every check"
    return refusal


def test_good_requests_pass(directory: Directory) -> None:
    assert check_request(directory, GOOD, AT_NOW) is None
    assert check_request(directory, _gpc(), AT_NOW) is None
    assert (
        check_request(
            directory,
            _gpc(
                SEARCH,
                fhir=_fhir(f"{ROOT}/Patient", query=f"identifier={NHS}|9000000009"),
            ),
            AT_NOW,
        )
        is None
    )


@pytest.mark.parametrize(
    ("changes", "status", "token", "detail"),
    [
        ({"trace_id": None}, 400, "BAD_REQUEST", "missing header(s): Ssp-TraceID"),
        ({"from_asid": None, "to_asid": None}, 400, "BAD_REQUEST", "Ssp-From, Ssp-To"),
        ({"interaction_id": ""}, 400, "BAD_REQUEST", "Ssp-InteractionID"),
        ({"interaction_id": "   "}, 400, "BAD_REQUEST", "Ssp-InteractionID"),
        ({"trace_id": "not-a-uuid"}, 400, "BAD_REQUEST", "is not a UUID"),
        ({"from_asid": "91800000000"}, 400, "BAD_REQUEST", "Ssp-From '91800000000' is not a 12"),
        ({"to_asid": "abcdefghijkl"}, 400, "BAD_REQUEST", "Ssp-To 'abcdefghijkl'"),
        # Unicode digits are digits to str.isdigit, but not to an ASID.
        ({"to_asid": "٩١٨٠٠٠٠٠٠٠٠٢"}, 400, "BAD_REQUEST", "is not a 12-digit ASID"),
        ({"interaction_id": "NOPE"}, 400, "BAD_REQUEST", "'NOPE' is not known"),
        ({"to_asid": "123456789123"}, 400, "BAD_REQUEST", "123456789123 is not a registered"),
        ({"from_asid": "123456789123"}, 403, "ASID_CHECK_FAILED_MESSAGESENDER_123456789123", ""),
        # The last hosted practice is not accredited to send EHR extracts...
        (
            {
                "from_asid": "918000000024",
                "to_asid": "918000000023",
                "interaction_id": "RCMR_IN030000UK06",
            },
            403,
            "ASID_CHECK_FAILED_MESSAGESENDER_918000000024",
            "",
        ),
        # ... and so cannot receive them either.
        (
            {
                "from_asid": "918000000023",
                "to_asid": "918000000024",
                "interaction_id": "RCMR_IN030000UK06",
            },
            403,
            "PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_918000000024",
            "",
        ),
        # Regions of eight share data; 1 and 9 are in different regions.
        (
            {"to_asid": "918000000009"},
            403,
            "FOT_CHECK_FAILED_MESSAGESENDER_918000000001_MESSAGERECEIVER_918000000009",
            "",
        ),
    ],
)
def test_ebxml_path_refusals(
    directory: Directory, changes: dict[str, str | None], status: int, token: str, detail: str
) -> None:
    refusal = _refusal(directory, replace(GOOD, **changes))  # type: ignore[arg-type]
    assert (refusal.status, refusal.token) == (status, token)
    assert detail in refusal.detail


def test_the_ebxml_path_needs_no_authorization(directory: Directory) -> None:
    # Reliable messaging is authenticated by TLS, not by the GP Connect JWT.
    assert check_request(directory, GOOD, AT_NOW) is None
    assert (
        check_request(directory, replace(GOOD, client=ClientCertificate(("127.0.0.1",))), AT_NOW)
        is None
    )


@pytest.mark.parametrize(
    ("request_", "status", "token", "detail"),
    [
        (
            _gpc(fhir=FhirCall("GET", f"{ROOT}/metadata")),
            400,
            "BAD_REQUEST",
            "missing header(s): Authorization",
        ),
        (_gpc("RCMR_IN010000UK05"), 400, "BAD_REQUEST", "is not known"),
        (_gpc(SEARCH), 400, "BAD_REQUEST", "is GET .../Patient, not GET"),
        (
            _gpc(STRUCTURED, fhir=_fhir(f"{ROOT}/Patient/$gpc.getstructuredrecord")),
            400,
            "BAD_REQUEST",
            "is POST .../Patient/$gpc.getstructuredrecord, not GET",
        ),
        (_gpc(fhir=_fhir(scope="patient/*.write")), 400, "BAD_REQUEST", "does not allow"),
        # Hostname for IP, an explicit port, a trailing slash, another ODS code, another
        # capability's root: all differ from the SDS endpoint, which the SSP compares exactly.
        (
            _gpc(fhir=_fhir("http://localhost:8085/A80002/STU3/1/gpconnect/metadata")),
            400,
            f"ENDPOINT_{ROOT}_CPAID_S918000000002_VARIES_FROM_TARGETURL_"
            "http://localhost:8085/A80002/STU3/1/gpconnect",
            "",
        ),
        (
            _gpc(fhir=_fhir("http://127.0.0.1:8085/A80002/STU3/1/gpconnect//metadata")),
            400,
            f"ENDPOINT_{ROOT}_CPAID_S918000000002_VARIES_FROM_TARGETURL_"
            "http://127.0.0.1:8085/A80002/STU3/1/gpconnect/",
            "",
        ),
        (
            _gpc(fhir=_fhir("http://127.0.0.1:8085/A80003/STU3/1/gpconnect/metadata")),
            400,
            f"ENDPOINT_{ROOT}_CPAID_S918000000002_VARIES_FROM_TARGETURL_"
            "http://127.0.0.1:8085/A80003/STU3/1/gpconnect",
            "",
        ),
        (
            _gpc(fhir=_fhir(f"{ROOT}/structured/metadata")),
            400,
            f"ENDPOINT_{ROOT}_CPAID_S918000000002_VARIES_FROM_TARGETURL_{ROOT}/structured",
            "",
        ),
        # The last hosted practice serves no structured records.
        (
            _gpc(
                STRUCTURED,
                to_asid="918000000024",
                from_asid="918000000023",
                fhir=_fhir(
                    "http://127.0.0.1:8085/A80024/STU3/1/gpconnect/structured/"
                    "Patient/$gpc.getstructuredrecord",
                    "POST",
                ),
            ),
            403,
            "PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_918000000024",
            "",
        ),
        (
            _gpc(
                to_asid="918000000009",
                fhir=_fhir("http://127.0.0.1:8085/A80009/STU3/1/gpconnect/metadata"),
            ),
            403,
            "FOT_CHECK_FAILED_MESSAGESENDER_918000000001_MESSAGERECEIVER_918000000009",
            "",
        ),
        (
            _gpc(SEARCH, fhir=_fhir(f"{ROOT}/Patient", query=f"identifier={NHS}|9000000008")),
            400,
            "INVALID_NHS_NUMBER",
            "fails the modulus 11 check",
        ),
        (
            _gpc(
                STRUCTURED,
                fhir=_fhir(
                    f"{ROOT}/structured/Patient/$gpc.getstructuredrecord",
                    "POST",
                    body=orjson.dumps(
                        {
                            "resourceType": "Parameters",
                            "parameter": [
                                {
                                    "name": "patientNHSNumber",
                                    "valueIdentifier": {"system": NHS, "value": "12345"},
                                }
                            ],
                        }
                    ),
                ),
            ),
            400,
            "INVALID_NHS_NUMBER",
            "'12345' is not 10 digits",
        ),
    ],
)
def test_gp_connect_path_refusals(
    directory: Directory, request_: SspRequest, status: int, token: str, detail: str
) -> None:
    refusal = _refusal(directory, request_)
    assert (refusal.status, refusal.token) == (status, token)
    assert detail in refusal.detail


def test_a_body_the_ssp_cannot_read_is_left_to_the_provider(directory: Directory) -> None:
    call = _fhir(f"{ROOT}/structured/Patient/$gpc.getstructuredrecord", "POST", body=b"{nope")
    assert check_request(directory, _gpc(STRUCTURED, fhir=call), AT_NOW) is None


def test_gp_connect_endpoint_override_moves_the_registered_root(directory: Directory) -> None:
    moved = CheckContext(
        now=lambda: NOW, gpconnect_overrides={"datacentre": "http://127.0.0.1:9999"}
    )
    request = _gpc(fhir=_fhir("http://127.0.0.1:9999/A80002/STU3/1/gpconnect/metadata"))
    assert check_request(directory, request, moved) is None
    refusal = check_request(directory, _gpc(), moved)
    assert refusal is not None
    assert refusal.token.startswith("ENDPOINT_http://127.0.0.1:9999/A80002/STU3/1/gpconnect_")


@pytest.mark.parametrize(
    ("client", "status", "token", "detail"),
    [
        (ClientCertificate(()), 496, "SSL_CERTIFICATE_REQUIRED", "no client certificate"),
        (
            ClientCertificate(("intruder.example",)),
            495,
            "SSL_CERTIFICATE_ERROR",
            "names intruder.example, not 127.0.0.1, the FQDN registered for Ssp-From",
        ),
    ],
)
def test_client_certificate_refusals(
    directory: Directory, client: ClientCertificate, status: int, token: str, detail: str
) -> None:
    refusal = _refusal(directory, replace(GOOD, client=client))
    assert (refusal.status, refusal.token) == (status, token)
    assert detail in refusal.detail


def test_a_certificate_for_an_unregistered_sender_cannot_match(directory: Directory) -> None:
    refusal = _refusal(
        directory,
        replace(GOOD, from_asid="123456789123", client=ClientCertificate(("127.0.0.1",))),
    )
    assert refusal.status == 495
    assert "no FQDN is registered for Ssp-From 123456789123" in refusal.detail


def test_a_matching_certificate_passes(directory: Directory) -> None:
    # The default topology's datacentre is reached at 127.0.0.1, so that is its FQDN.
    for names in (("127.0.0.1",), ("x", "127.0.0.1"), ("127.0.0.1".upper(),)):
        assert (
            check_request(directory, replace(GOOD, client=ClientCertificate(names)), AT_NOW) is None
        )


# Each row fails the named check and a later one: the named check's error is the answer.
# Together the rows walk every adjacent pair of CHECK_ORDER, so they pin the whole order.
ORDER_CASES = [
    (
        "client_certificate",
        replace(GOOD, client=ClientCertificate(()), trace_id=None),
        "no client certificate",
    ),
    ("headers_present", replace(GOOD, trace_id=None, from_asid="x"), "missing header(s)"),
    (
        "headers_well_formed",
        replace(GOOD, from_asid="bad", client=ClientCertificate(("intruder",))),
        "is not a 12-digit ASID",
    ),
    (
        "client_certificate_name",
        replace(GOOD, interaction_id="NOPE", client=ClientCertificate(("intruder",))),
        "the client certificate names intruder",
    ),
    (
        "interaction_known",
        _gpc("NOPE", fhir=FhirCall("GET", f"{ROOT}/metadata", "", "Bearer x.y.")),
        "'NOPE' is not known",
    ),
    (
        "interaction_matches_request",
        _gpc(SEARCH, fhir=FhirCall("GET", f"{ROOT}/metadata", "", "Bearer x.y.")),
        "is GET .../Patient, not GET",
    ),
    ("jwt", _gpc(fhir=_fhir(scope="nonsense"), to_asid="123456789123"), "requested_scope"),
    (
        "receiver_registered",
        replace(GOOD, to_asid="123456789123", from_asid="999999999999"),
        "123456789123 is not a registered ASID",
    ),
    (
        "sender_accredited",
        replace(GOOD, from_asid="999999999999", to_asid="918000000009"),
        "ASID_CHECK_FAILED_MESSAGESENDER_999999999999",
    ),
    (
        "receiver_accredited",
        _gpc(
            STRUCTURED,
            from_asid="918000000023",
            to_asid="918000000024",
            fhir=_fhir(f"{ROOT}/structured/Patient/$gpc.getstructuredrecord", "POST"),
        ),
        "PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_918000000024",
    ),
    (
        "endpoint",
        _gpc(to_asid="918000000009"),
        f"ENDPOINT_http://127.0.0.1:8085/A80009/STU3/1/gpconnect_CPAID_S918000000009_"
        f"VARIES_FROM_TARGETURL_{ROOT}",
    ),
    (
        "originating_organisation",
        _gpc(
            SEARCH,
            from_asid="918000000003",
            to_asid="918000000009",
            fhir=_fhir(
                "http://127.0.0.1:8085/A80009/STU3/1/gpconnect/Patient",
                query=f"identifier={NHS}|1",
            ),
        ),
        "names 'A80001', not A80003, the organisation of ASID 918000000003",
    ),
    (
        "data_sharing_agreement",
        _gpc(
            SEARCH,
            to_asid="918000000009",
            fhir=_fhir(
                "http://127.0.0.1:8085/A80009/STU3/1/gpconnect/Patient",
                query=f"identifier={NHS}|1",
            ),
        ),
        "FOT_CHECK_FAILED_MESSAGESENDER_918000000001_MESSAGERECEIVER_918000000009",
    ),
]


@pytest.mark.parametrize(
    ("first", "request_", "says"), ORDER_CASES, ids=[case[0] for case in ORDER_CASES]
)
def test_the_first_failing_check_answers(
    directory: Directory, first: str, request_: SspRequest, says: str
) -> None:
    refusal = _refusal(directory, request_)
    assert says in refusal.detail or says == refusal.token, (first, refusal)


def test_the_order_cases_cover_every_check_but_the_last() -> None:
    assert [case[0] for case in ORDER_CASES] == list(CHECK_ORDER[:-1])


def test_operation_outcome_has_the_real_ssp_shape() -> None:
    body = operation_outcome(Refusal.no_agreement("918000000001", "918000000009"))
    assert body["resourceType"] == "OperationOutcome"
    assert body["id"] == body["id"].upper()
    uuid.UUID(body["id"])
    issue = body["issue"][0]
    assert issue["severity"] == "error"
    assert issue["code"] == "forbidden"
    coding = issue["details"]["coding"][0]
    assert coding["system"] == "http://fhir.nhs.net/ValueSet/gpconnect-schedule-response-code-1-0"
    assert coding["code"] == "403"
    assert (
        coding["display"]
        == "FOT_CHECK_FAILED_MESSAGESENDER_918000000001_MESSAGERECEIVER_918000000009"
    )
    assert issue["diagnostics"] == coding["display"]
    assert outcome_token(body) == coding["display"]
    assert outcome_token({"issue": []}) is None
    assert outcome_token("nonsense") is None


def test_method_not_allowed_is_fatal_with_spines_own_system() -> None:
    issue = operation_outcome(Refusal.method_not_allowed("GET"))["issue"][0]
    assert issue["severity"] == "fatal"
    assert issue["code"] == "forbidden"
    coding = issue["details"]["coding"][0]
    assert coding == {
        "system": "https://fhir.nhs.uk/StructureDefinition/spine-operationoutcome-1",
        "code": "405",
        "display": "405: Method Not Allowed",
    }
