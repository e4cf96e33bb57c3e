"""The SDS FHIR API's search parameters and error answers, as the real service checks them.

Facts from NHS Digital's Spine Directory Service API (github.com/NHSDigital/
spine-directory-service-api: docker/sds-api/spine-directory-service/sds/request/
base_handler.py, accredited_system_handler.py, routing_reliability_handler.py,
error_handler.py, content_type_validator.py):

- Each parameter value is ``<system>|<value>``; a value without the right system, or with an
  empty value, counts as missing. Of several values for one system the last one wins.
- ``GET /Device`` needs ``organization`` and an interaction ``identifier``; it also takes a
  party-key ``identifier`` and ``manufacturing-organization``.
- ``GET /Endpoint`` needs two of organization, interaction and party key, and not
  ``organization`` with neither identifier (organization alone is refused).
- Any other parameter is refused ("Illegal query parameter"); so is an ``identifier`` of any
  other system. Every refusal is a 400 OperationOutcome whose diagnostics say what to send.
- A search that matches nothing is a 200 Bundle with ``total: 0``; a 404 is only for a path
  the service does not have.
- ``Accept`` may be application/fhir+json (the default, and for ``*/*``) or
  application/json; anything else is a 406. ``X-Correlation-ID``, when sent, must be a UUID
  (else 400) and is echoed back.
- The ``apikey`` header is checked by the API platform in front of the service, not by the
  service itself; this simulator accepts any (see docs/integrators.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mhs.ids import ODS_SYSTEM, is_uuid

ORGANIZATION = "organization"
IDENTIFIER = "identifier"
MANUFACTURING_ORGANIZATION = "manufacturing-organization"

INTERACTION_SYSTEM = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
PARTY_KEY_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
_SPINE_CODES = "https://fhir.nhs.uk/STU3/ValueSet/Spine-ErrorOrWarningCode-1"


class SdsError(ValueError):
    """A request the SDS API refuses: its HTTP status and what the diagnostics say."""

    def __init__(self, status: int, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics


@dataclass(frozen=True, slots=True)
class SdsQuery:
    """One search's criteria; None where the request did not name one."""

    organization: str | None = None
    interaction: str | None = None
    party_key: str | None = None
    manufacturer: str | None = None


def _form(name: str, system: str) -> str:
    return f"'{name}={system}|value'"


def _invalid(name: str, system: str) -> SdsError:
    return SdsError(
        400, f"Missing or invalid '{name}' query parameter. Should be {_form(name, system)}"
    )


_INVALID_IDENTIFIER = SdsError(
    400,
    f"Missing or invalid '{IDENTIFIER}' query parameter. Should be one or both of: ["
    f"{_form(IDENTIFIER, INTERACTION_SYSTEM)}, {_form(IDENTIFIER, PARTY_KEY_SYSTEM)}]",
)
_ENDPOINT_COMBINATIONS = SdsError(
    400,
    "Missing or invalid query parameters. Should be one of the following combinations: ["
    + ", ".join(
        "'" + "&".join(parts) + "'"
        for parts in (
            ("organization=…", "identifier=<interaction>", "identifier=<party key>"),
            ("organization=…", "identifier=<interaction>"),
            ("organization=…", "identifier=<party key>"),
            ("identifier=<interaction>", "identifier=<party key>"),
        )
    )
    + "]",
)
_SYSTEMS = {
    ORGANIZATION: (ODS_SYSTEM,),
    IDENTIFIER: (INTERACTION_SYSTEM, PARTY_KEY_SYSTEM),
    MANUFACTURING_ORGANIZATION: (ODS_SYSTEM,),
}


def _checked(params: Sequence[tuple[str, str]], allowed: Sequence[str]) -> None:
    for name, value in params:
        if name not in allowed:
            raise SdsError(400, f"Illegal query parameter '{name}'")
        if not any(value.startswith(system + "|") for system in _SYSTEMS[name]):
            raise _INVALID_IDENTIFIER if name == IDENTIFIER else _invalid(name, _SYSTEMS[name][0])


def _value(params: Sequence[tuple[str, str]], name: str, system: str) -> str | None:
    """The last non-blank ``system|value`` of parameter ``name``, as the real service reads."""
    found = None
    for key, raw in params:
        given, _, value = raw.partition("|")
        if key == name and given == system and value.strip():
            found = value
    return found


def device_query(params: Sequence[tuple[str, str]]) -> SdsQuery:
    """``GET /Device``'s criteria from its query parameters, or SdsError."""
    _checked(params, (ORGANIZATION, IDENTIFIER, MANUFACTURING_ORGANIZATION))
    organization = _value(params, ORGANIZATION, ODS_SYSTEM)
    if organization is None:
        raise _invalid(ORGANIZATION, ODS_SYSTEM)
    interaction = _value(params, IDENTIFIER, INTERACTION_SYSTEM)
    if interaction is None:
        raise _invalid(IDENTIFIER, INTERACTION_SYSTEM)
    return SdsQuery(
        organization=organization,
        interaction=interaction,
        party_key=_value(params, IDENTIFIER, PARTY_KEY_SYSTEM),
        manufacturer=_value(params, MANUFACTURING_ORGANIZATION, ODS_SYSTEM),
    )


def endpoint_query(params: Sequence[tuple[str, str]]) -> SdsQuery:
    """``GET /Endpoint``'s criteria from its query parameters, or SdsError."""
    _checked(params, (ORGANIZATION, IDENTIFIER))
    query = SdsQuery(
        organization=_value(params, ORGANIZATION, ODS_SYSTEM),
        interaction=_value(params, IDENTIFIER, INTERACTION_SYSTEM),
        party_key=_value(params, IDENTIFIER, PARTY_KEY_SYSTEM),
    )
    identifiers = [query.interaction, query.party_key]
    if (query.organization and not any(identifiers)) or (
        not query.organization and not all(identifiers)
    ):
        raise _ENDPOINT_COMBINATIONS
    return query


def accepted_type(accept: str | None) -> str:
    """The content type to answer in for an ``Accept`` header, or SdsError 406."""
    asked = [part.split(";")[0].strip() for part in (accept or FHIR_JSON).lower().split(",")]
    if "*/*" in asked or FHIR_JSON in asked:
        return FHIR_JSON
    if JSON in asked:
        return JSON
    raise SdsError(
        406, f"Invalid Accept header in request, only: {JSON} or {FHIR_JSON} are allowed"
    )


def check_correlation_id(value: str | None) -> None:
    """SdsError 400 unless ``value`` is absent or a UUID."""
    if value and not is_uuid(value):
        raise SdsError(400, "Invalid X-Correlation-ID header. Should be a UUID")


# The issue code and Spine coding the real service gives each status it answers with.
_ISSUES = {
    400: ("required", "BAD_REQUEST", "Bad request"),
    404: ("not-found", "NO_RECORD_FOUND", "No record found"),
    405: ("not-supported", "NOT_IMPLEMENTED", "Not implemented"),
    406: (
        "not-supported",
        "MISSING_OR_INVALID_HEADER",
        "There is a required header missing or invalid",
    ),
}


def sds_outcome(error: SdsError, correlation_id: str) -> dict[str, Any]:
    """The OperationOutcome the SDS API answers ``error`` with."""
    code, token, display = _ISSUES[error.status]
    return {
        "resourceType": "OperationOutcome",
        "id": correlation_id,
        "issue": [
            {
                "severity": "error",
                "code": code,
                "details": {
                    "coding": [{"system": _SPINE_CODES, "code": token, "display": display}]
                },
                "diagnostics": error.diagnostics,
            }
        ],
    }
