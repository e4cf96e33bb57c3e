"""The simulated provider's records: a few synthetic patients per practice, and the FHIR
STU3 resources GP Connect returns for them. Deterministic, so tests and READMEs can name
patients; every NHS number passes the modulus 11 check."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from mhs.gpconnect.interactions import GpcInteraction
from mhs.ids import ODS_SYSTEM
from mhs.ssp.nhs_number import NHS_NUMBER_SYSTEM, check_digit

PATIENTS_PER_PRACTICE = 3
SDS_USER_SYSTEM = "https://fhir.nhs.uk/Id/sds-user-id"
_FAMILIES = ("Smith", "Jones", "Patel", "Williams", "Khan", "Brown", "Taylor", "Davies")
_GIVEN = ("Amelia", "Oliver", "Isla", "Noah", "Ava", "Arjun", "Freya", "Leo")
_PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-{}-1"


@dataclass(frozen=True, slots=True)
class Patient:
    """A synthetic patient registered at one practice."""

    nhs_number: str
    family: str
    given: str
    gender: str
    birth_date: str
    ods_code: str

    @property
    def id(self) -> str:
        return f"{self.ods_code}-{self.nhs_number}"


def _seed(ods_code: str) -> int:
    return int.from_bytes(hashlib.sha256(f"gp-provider:{ods_code}".encode()).digest()[:8], "big")


def patients_of(ods_code: str) -> tuple[Patient, ...]:
    """The practice's patients (always the same ones for the same ODS code)."""
    seed = _seed(ods_code)
    found: list[Patient] = []
    candidate = 900_000_000 + seed % 90_000_000
    while len(found) < PATIENTS_PER_PRACTICE:
        first_nine = f"{candidate:09d}"
        candidate += 1
        check = check_digit(first_nine)
        if check is None:
            continue
        n = len(found) + seed
        found.append(
            Patient(
                nhs_number=f"{first_nine}{check}",
                family=_FAMILIES[n % len(_FAMILIES)],
                given=_GIVEN[(n * 3) % len(_GIVEN)],
                gender=("female", "male")[n % 2],
                birth_date=f"{1940 + n % 70}-{1 + n % 12:02d}-{1 + n % 28:02d}",
                ods_code=ods_code,
            )
        )
    return tuple(found)


def find_patient(ods_code: str, nhs_number: str) -> Patient | None:
    return next((p for p in patients_of(ods_code) if p.nhs_number == nhs_number), None)


def patient_resource(patient: Patient) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient.id,
        "meta": {"profile": [_PROFILE.format("Patient")]},
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": patient.nhs_number}],
        "active": True,
        "name": [{"use": "official", "family": patient.family, "given": [patient.given]}],
        "gender": patient.gender,
        "birthDate": patient.birth_date,
        "generalPractitioner": [{"reference": f"Practitioner/{patient.ods_code}-GP1"}],
        "managingOrganization": {"reference": f"Organization/{patient.ods_code}"},
    }


def organization_resource(ods_code: str, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": ods_code,
        "meta": {"profile": [_PROFILE.format("Organization")]},
        "identifier": [{"system": ODS_SYSTEM, "value": ods_code}],
        "name": name,
    }


def practitioner_resource(ods_code: str) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": f"{ods_code}-GP1",
        "meta": {"profile": [_PROFILE.format("Practitioner")]},
        "identifier": [{"system": SDS_USER_SYSTEM, "value": f"G{_seed(ods_code) % 10**7:07d}"}],
        "name": [{"use": "usual", "family": "Practitioner", "given": ["Duty"], "prefix": ["Dr"]}],
    }


def capability_statement(
    ods_code: str, interactions: list[GpcInteraction], capability: str
) -> dict[str, Any]:
    """What this practice's provider serves under one capability's service root."""
    operations = [i for i in interactions if i.capability == capability]
    return {
        "resourceType": "CapabilityStatement",
        "version": "1.2.7",
        "name": f"GP Connect {capability} ({ods_code})",
        "status": "active",
        "date": "2024-01-01",
        "publisher": "MHS Simulator",
        "kind": "instance",
        "software": {"name": "mhs-simulator gp-provider", "version": "0.1.0"},
        "fhirVersion": "3.0.1",
        "acceptUnknown": "both",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "rest": [
            {
                "mode": "server",
                "resource": [{"type": "Patient", "interaction": [{"code": "search-type"}]}],
                "operation": [
                    {"name": i.path.rsplit("$", 1)[-1], "definition": {"reference": i.urn}}
                    for i in operations
                    if "$" in i.path
                ],
            }
        ],
    }


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def structured_record(patient: Patient, practice_name: str) -> dict[str, Any]:
    """The structured record Bundle: the patient, their practice and GP, and an allergy list."""
    allergies = {
        "resourceType": "List",
        "status": "current",
        "mode": "snapshot",
        "title": "Allergies and adverse reactions",
        "code": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "886921000000105",
                    "display": "Allergies and adverse reaction",
                }
            ]
        },
        "subject": {"reference": f"Patient/{patient.id}"},
        "emptyReason": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/list-empty-reason",
                    "code": "no-content-recorded",
                    "display": "No Content Recorded",
                }
            ]
        },
    }
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [_PROFILE.format("StructuredRecord-Bundle")]},
        "type": "collection",
        "entry": [
            {"resource": patient_resource(patient)},
            {"resource": organization_resource(patient.ods_code, practice_name)},
            {"resource": practitioner_resource(patient.ods_code)},
            {"resource": allergies},
        ],
    }
