"""SSP refusals and the FHIR OperationOutcome bodies Spine sends for them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

RESPONSE_CODE_SYSTEM = "http://fhir.nhs.net/ValueSet/gpconnect-schedule-response-code-1-0"
OUTCOME_PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-OperationOutcome-1"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the proxy refused a request: HTTP status, FHIR issue code and Spine's token."""

    status: int
    issue_code: str
    token: str
    detail: str = ""

    @classmethod
    def bad_request(cls, detail: str) -> Refusal:
        return cls(400, "invalid", "BAD_REQUEST", detail)

    @classmethod
    def sender_not_accredited(cls, from_asid: str) -> Refusal:
        return cls(403, "forbidden", f"ASID_CHECK_FAILED_MESSAGESENDER_{from_asid}")

    @classmethod
    def receiver_not_accredited(cls, to_asid: str) -> Refusal:
        return cls(403, "forbidden", f"PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_{to_asid}")

    @classmethod
    def no_agreement(cls, from_asid: str, to_asid: str) -> Refusal:
        return cls(
            403, "forbidden", f"FOT_CHECK_FAILED_MESSAGESENDER_{from_asid}_MESSAGERECEIVER_{to_asid}"
        )

    @classmethod
    def unreachable(cls, url: str) -> Refusal:
        return cls(502, "transient", f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{url}")

    @classmethod
    def timed_out(cls, url: str) -> Refusal:
        return cls(504, "transient", f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{url}", "timed out")


def operation_outcome(refusal: Refusal) -> dict[str, Any]:
    """The body Spine's SSP sends: HTTP status in details.coding.code, token in display."""
    return {
        "resourceType": "OperationOutcome",
        "id": str(uuid.uuid4()).upper(),
        "meta": {"profile": [OUTCOME_PROFILE]},
        "issue": [
            {
                "severity": "error",
                "code": refusal.issue_code,
                "details": {
                    "coding": [
                        {
                            "system": RESPONSE_CODE_SYSTEM,
                            "code": str(refusal.status),
                            "display": refusal.token,
                        }
                    ]
                },
                "diagnostics": refusal.detail or refusal.token,
            }
        ],
    }


def outcome_token(body: Any) -> str | None:
    """The diagnostic token of an OperationOutcome, or None if ``body`` is not one."""
    try:
        coding = body["issue"][0]["details"]["coding"][0]
        token = coding["display"]
    except (KeyError, IndexError, TypeError):
        return None
    return token if isinstance(token, str) else None
