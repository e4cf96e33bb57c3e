from __future__ import annotations

import uuid

import pytest

from mhs.directory import Directory, load_topology
from mhs.ssp import Refusal, SspRequest, check_request, operation_outcome
from mhs.ssp.outcome import outcome_token

TRACE = str(uuid.uuid4())
GOOD = SspRequest(TRACE, "918000000001", "918000000002", "RCMR_IN010000UK05")


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_topology()


def _with(**changes: str | None) -> SspRequest:
    values = {
        "trace_id": GOOD.trace_id,
        "from_asid": GOOD.from_asid,
        "to_asid": GOOD.to_asid,
        "interaction_id": GOOD.interaction_id,
    }
    values.update(changes)
    return SspRequest(**values)


def test_a_good_request_passes(directory: Directory) -> None:
    assert check_request(directory, GOOD) is None


@pytest.mark.parametrize(
    ("request_", "status", "token", "detail"),
    [
        (_with(trace_id=None), 400, "BAD_REQUEST", "missing header(s): Ssp-TraceID"),
        (_with(from_asid=None, to_asid=None), 400, "BAD_REQUEST", "Ssp-From, Ssp-To"),
        (_with(interaction_id=""), 400, "BAD_REQUEST", "Ssp-InteractionID"),
        (_with(trace_id="not-a-uuid"), 400, "BAD_REQUEST", "is not a UUID"),
        (_with(from_asid="91800000000"), 400, "BAD_REQUEST", "Ssp-From '91800000000' is not a 12-digit"),
        (_with(to_asid="abcdefghijkl"), 400, "BAD_REQUEST", "Ssp-To 'abcdefghijkl'"),
        (_with(interaction_id="NOPE"), 400, "BAD_REQUEST", "'NOPE' is not known"),
        (_with(to_asid="123456789123"), 400, "BAD_REQUEST", "123456789123 is not a registered ASID"),
        (_with(from_asid="123456789123"), 403, "ASID_CHECK_FAILED_MESSAGESENDER_123456789123", ""),
        # The last hosted practice is not accredited to send EHR extracts.
        (_with(from_asid="918000000024", to_asid="918000000023", interaction_id="RCMR_IN030000UK06"),
         403, "ASID_CHECK_FAILED_MESSAGESENDER_918000000024", ""),
        # ... and so cannot receive them either.
        (_with(from_asid="918000000023", to_asid="918000000024", interaction_id="RCMR_IN030000UK06"),
         403, "PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_918000000024", ""),
        # Regions of eight share data; 1 and 9 are in different regions.
        (_with(to_asid="918000000009"), 403,
         "FOT_CHECK_FAILED_MESSAGESENDER_918000000001_MESSAGERECEIVER_918000000009", ""),
    ],
)
def test_refusals(
    directory: Directory, request_: SspRequest, status: int, token: str, detail: str
) -> None:
    refusal = check_request(directory, request_)
    assert refusal is not None
    assert (refusal.status, refusal.token) == (status, token)
    assert detail in refusal.detail


def test_sender_check_comes_before_the_agreement_check(directory: Directory) -> None:
    # Unknown sender to a receiver in another region: the sender check answers first.
    refusal = check_request(directory, _with(from_asid="999999999999", to_asid="918000000009"))
    assert refusal is not None
    assert refusal.token.startswith("ASID_CHECK_FAILED")


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
    assert coding["display"] == "FOT_CHECK_FAILED_MESSAGESENDER_918000000001_MESSAGERECEIVER_918000000009"
    assert issue["diagnostics"] == coding["display"]
    assert outcome_token(body) == coding["display"]
    assert outcome_token({"issue": []}) is None
    assert outcome_token("nonsense") is None
