"""SSP refusals and the FHIR OperationOutcome bodies Spine sends for them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

RESPONSE_CODE_SYSTEM = "http://fhir.nhs.net/ValueSet/gpconnect-schedule-response-code-1-0"
SPINE_OUTCOME_SYSTEM = "https://fhir.nhs.uk/StructureDefinition/spine-operationoutcome-1"
SPINE_ERROR_SYSTEM = "https://fhir.nhs.uk/STU3/ValueSet/Spine-ErrorOrWarningCode-1"
OUTCOME_PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-OperationOutcome-1"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was refused: HTTP status, FHIR issue code and Spine's token."""

    status: int
    issue_code: str
    token: str
    detail: str = ""
    severity: str = "error"
    system: str = RESPONSE_CODE_SYSTEM

    @classmethod
    def bad_request(cls, detail: str) -> Refusal:
        return cls(400, "invalid", "BAD_REQUEST", detail)

    @classmethod
    def invalid_resource(cls, detail: str) -> Refusal:
        return cls(422, "invalid", "INVALID_RESOURCE", detail)

    @classmethod
    def invalid_nhs_number(cls, detail: str) -> Refusal:
        return cls(400, "value", "INVALID_NHS_NUMBER", detail)

    @classmethod
    def certificate_required(cls) -> Refusal:
        return cls(
            496,
            "security",
            "SSL_CERTIFICATE_REQUIRED",
            "no client certificate was presented (TLS mutual authentication is required)",
        )

    @classmethod
    def certificate_mismatch(cls, detail: str) -> Refusal:
        return cls(495, "security", "SSL_CERTIFICATE_ERROR", detail)

    @classmethod
    def sender_not_accredited(cls, from_asid: str) -> Refusal:
        return cls(403, "forbidden", f"ASID_CHECK_FAILED_MESSAGESENDER_{from_asid}")

    @classmethod
    def receiver_not_accredited(cls, to_asid: str) -> Refusal:
        return cls(403, "forbidden", f"PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_{to_asid}")

    @classmethod
    def endpoint_varies(cls, registered: str, cpa_id: str, target: str) -> Refusal:
        return cls(
            400,
            "invalid",
            f"ENDPOINT_{registered}_CPAID_{cpa_id}_VARIES_FROM_TARGETURL_{target}",
        )

    @classmethod
    def access_denied(cls, detail: str) -> Refusal:
        return cls(403, "forbidden", "ACCESS_DENIED", detail)

    @classmethod
    def no_agreement(cls, from_asid: str, to_asid: str) -> Refusal:
        return cls(
            403,
            "forbidden",
            f"FOT_CHECK_FAILED_MESSAGESENDER_{from_asid}_MESSAGERECEIVER_{to_asid}",
        )

    @classmethod
    def method_not_allowed(cls, method: str) -> Refusal:
        return cls(
            405,
            "forbidden",
            "405: Method Not Allowed",
            f"{method} is not allowed here",
            severity="fatal",
            system=SPINE_OUTCOME_SYSTEM,
        )

    @classmethod
    def too_large(cls, limit: int) -> Refusal:
        return cls(
            413,
            "too-long",
            "REQUEST_TOO_LARGE",
            f"the request body is over the {limit:,}-byte limit (MHS_MAX_REQUEST_BYTES)",
        )

    @classmethod
    def unreachable(cls, url: str, detail: str = "") -> Refusal:
        return cls(502, "transient", f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{url}", detail)

    @classmethod
    def timed_out(cls, url: str) -> Refusal:
        return cls(504, "transient", f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{url}", "timed out")


def _outcome(refusal: Refusal, coding: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "id": str(uuid.uuid4()).upper(),
        "meta": {"profile": [OUTCOME_PROFILE]},
        "issue": [
            {
                "severity": refusal.severity,
                "code": refusal.issue_code,
                "details": {"coding": [coding]},
                "diagnostics": refusal.detail or refusal.token,
            }
        ],
    }


def operation_outcome(refusal: Refusal) -> dict[str, Any]:
    """The body Spine's SSP sends: HTTP status in details.coding.code, token in display."""
    coding = {"system": refusal.system, "code": str(refusal.status), "display": refusal.token}
    return _outcome(refusal, coding)


def provider_outcome(refusal: Refusal) -> dict[str, Any]:
    """A GP Connect provider's error body: the Spine error code in details.coding.code (the
    SSP's own refusals put the HTTP status there instead)."""
    display = refusal.token.replace("_", " ").capitalize()
    coding = {"system": SPINE_ERROR_SYSTEM, "code": refusal.token, "display": display}
    return _outcome(refusal, coding)


def outcome_token(body: Any) -> str | None:
    """The diagnostic token of an OperationOutcome, or None if ``body`` is not one."""
    try:
        coding = body["issue"][0]["details"]["coding"][0]
        token = coding["display"]
    except (KeyError, IndexError, TypeError):
        return None
    return token if isinstance(token, str) else None
