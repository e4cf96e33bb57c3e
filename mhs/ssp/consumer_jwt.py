"""What a GP Connect consumer sends: the audit JWT's claims, for tools and tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

from mhs.ids import ODS_SYSTEM
from mhs.ssp.jwt_claims import LIFETIME_S, SDS_USER_SYSTEM, encode_unsigned

SDS_ROLE_SYSTEM = "https://fhir.nhs.uk/Id/sds-role-profile-id"


def consumer_claims(
    *,
    audience: str,
    scope: str = "patient/*.read",
    ods_code: str | None = None,
    organization_name: str = "Requesting practice",
    user_id: str = "UNK",
    issued_at: int | None = None,
) -> dict[str, Any]:
    """Claims as spine-messaging.md §2.2 lists them, for a request to ``audience`` (the
    provider's service root). Without ``ods_code`` there is no requesting_organization:
    the outbound MHS fills in the sending instance's own."""
    iat = int(time.time()) if issued_at is None else issued_at
    practitioner_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"mhs-simulator:{user_id}"))
    claims: dict[str, Any] = {
        "iss": "https://mhs-simulator.local/consumer",
        "sub": practitioner_id,
        "aud": audience,
        "exp": iat + LIFETIME_S,
        "iat": iat,
        "reason_for_request": "directcare",
        "requested_scope": scope,
        "requesting_device": {
            "resourceType": "Device",
            "identifier": [{"system": "https://mhs-simulator.local/device", "value": "cli"}],
            "model": "mhs-simulator",
            "version": "0.1.0",
        },
        "requesting_practitioner": {
            "resourceType": "Practitioner",
            "id": practitioner_id,
            "identifier": [
                {"system": SDS_USER_SYSTEM, "value": user_id},
                {"system": SDS_ROLE_SYSTEM, "value": "UNK"},
            ],
            "name": [{"family": "User", "given": ["Test"], "prefix": ["Dr"]}],
        },
    }
    if ods_code is not None:
        claims["requesting_organization"] = {
            "resourceType": "Organization",
            "identifier": [{"system": ODS_SYSTEM, "value": ods_code}],
            "name": organization_name,
        }
    return claims


def consumer_jwt(**kwargs: Any) -> str:
    """An unsigned JWT of ``consumer_claims(**kwargs)``."""
    return encode_unsigned(consumer_claims(**kwargs))
