"""The GP Connect interactions the simulator serves, and the service roots they live under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Capability = Literal["foundations", "structured"]
Scope = Literal["patient", "organization"]

FHIR_VERSION = "STU3"
GPC_MAJOR_VERSION = "1"
# Consumers must not use one capability's service root for another, so each has its own.
ROUTING_SEGMENTS: dict[Capability, str] = {
    "foundations": "gpconnect",
    "structured": "gpconnect/structured",
}


@dataclass(frozen=True, slots=True)
class GpcInteraction:
    """One GP Connect interaction: the request it stands for and the JWT scope it needs."""

    urn: str
    capability: Capability
    method: str
    path: str
    scope: Scope | None
    write: bool
    description: str

    def matches(self, method: str, fhir_path: str) -> bool:
        """Whether ``method`` and a target path ending in ``fhir_path`` make this request."""
        return method == self.method and (
            fhir_path == self.path or fhir_path.endswith("/" + self.path)
        )


_ALL = (
    GpcInteraction(
        "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1",
        "foundations",
        "GET",
        "metadata",
        None,
        False,
        "Foundations capability statement",
    ),
    GpcInteraction(
        "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1",
        "foundations",
        "GET",
        "Patient",
        "patient",
        False,
        "Find a patient by NHS number",
    ),
    GpcInteraction(
        "urn:nhs:names:services:gpconnect:structured:fhir:rest:read:metadata-1",
        "structured",
        "GET",
        "metadata",
        None,
        False,
        "Access Record Structured capability statement",
    ),
    GpcInteraction(
        "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1",
        "structured",
        "POST",
        "Patient/$gpc.getstructuredrecord",
        "patient",
        False,
        "Get a patient's structured record",
    ),
)
GPCONNECT_INTERACTIONS: dict[str, GpcInteraction] = {i.urn: i for i in _ALL}


def gpconnect_interaction(urn: str) -> GpcInteraction | None:
    return GPCONNECT_INTERACTIONS.get(urn)


def service_root(base: str, ods_code: str, capability: Capability) -> str:
    """``<base>/<ODS>/STU3/1/<routing segment>``: no trailing slash, case as written."""
    segment = ROUTING_SEGMENTS[capability]
    return f"{base.rstrip('/')}/{ods_code}/{FHIR_VERSION}/{GPC_MAJOR_VERSION}/{segment}"
