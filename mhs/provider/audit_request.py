"""What an audit entry says about one request: who asked (the JWT's claims as sent, whether
or not they passed), for which patient, and how the provider answered."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from mhs.directory import Party
from mhs.gpconnect.interactions import GpcInteraction
from mhs.provider.audit import (
    AuditDevice,
    AuditDraft,
    AuditOrganisation,
    AuditOutcome,
    AuditPractitioner,
)
from mhs.provider.provider import ProviderRequest
from mhs.ssp.checks import nhs_numbers_in_parameters, nhs_numbers_in_query
from mhs.ssp.consumer_jwt import SDS_ROLE_SYSTEM
from mhs.ssp.jwt_claims import SDS_USER_SYSTEM, requesting_ods
from mhs.ssp.outcome import Refusal

# Claims are copied as sent, so a hostile one could be huge: each text is capped.
MAX_TEXT = 256


def draft_for(
    request: ProviderRequest,
    *,
    at: float,
    status: int,
    refusal: Refusal | None = None,
    party: Party | None = None,
    interaction: GpcInteraction | None = None,
) -> AuditDraft:
    """The audit entry (before chaining) of ``request``, answered ``status`` at ``at``."""
    headers = request.headers
    claims = _claims(headers.get("Authorization"))
    return AuditDraft(
        at=datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
        trace_id=_text(headers.get("Ssp-TraceID")),
        consumer_asid=_text(headers.get("Ssp-From")),
        provider_asid=party.asid if party else None,
        provider_ods=party.ods_code if party else None,
        method=request.method,
        path=request.path[:MAX_TEXT],
        interaction=interaction.urn if interaction else _text(headers.get("Ssp-InteractionID")),
        patient=named_patient(request),
        organisation=_organisation(claims),
        practitioner=_practitioner(claims.get("requesting_practitioner")),
        device=_device(claims.get("requesting_device")),
        reason_for_request=_text(claims.get("reason_for_request")),
        requested_scope=_text(claims.get("requested_scope")),
        outcome=AuditOutcome(
            status=status,
            code=refusal.token if refusal else None,
            detail=refusal.detail[:MAX_TEXT] if refusal and refusal.detail else None,
        ),
    )


def named_patient(request: ProviderRequest) -> str | None:
    """The NHS number the request names (search identifier or Parameters), valid or not."""
    numbers = nhs_numbers_in_query(request.query)
    if not numbers and request.body:
        try:
            numbers = nhs_numbers_in_parameters(orjson.loads(request.body)) or []
        except orjson.JSONDecodeError:
            numbers = []
    return _text(numbers[0]) if numbers else None


def _claims(authorization: str | None) -> dict[str, Any]:
    """The JWT's claims as sent, read without the provider's checks (those decide the
    outcome, not what is recorded); {} when there is no readable claims part."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        return {}
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def _identifier(resource: Mapping[str, Any], system: str | None) -> tuple[str | None, str | None]:
    """The first identifier of ``system`` (any system when None): its system and value."""
    for item in _list(resource.get("identifier")):
        if isinstance(item, Mapping) and (system is None or item.get("system") == system):
            return _text(item.get("system")), _text(item.get("value"))
    return None, None


def _organisation(claims: Mapping[str, Any]) -> AuditOrganisation | None:
    organisation = claims.get("requesting_organization")
    if not isinstance(organisation, Mapping):
        return None
    return AuditOrganisation(
        ods_code=_text(requesting_ods(claims)), name=_text(organisation.get("name"))
    )


def _practitioner(practitioner: Any) -> AuditPractitioner | None:
    if not isinstance(practitioner, Mapping):
        return None
    return AuditPractitioner(
        id=_text(practitioner.get("id")),
        sds_user_id=_identifier(practitioner, SDS_USER_SYSTEM)[1],
        sds_role_profile_id=_identifier(practitioner, SDS_ROLE_SYSTEM)[1],
        name=_human_name(practitioner.get("name")),
    )


def _human_name(names: Any) -> str | None:
    """The first FHIR HumanName as one line: prefixes, given names, family name."""
    first = names[0] if isinstance(names, list) and names else None
    if not isinstance(first, Mapping):
        return None
    parts = [*_list(first.get("prefix")), *_list(first.get("given")), first.get("family")]
    words = [part for part in parts if isinstance(part, str) and part]
    return _text(" ".join(words)) if words else None


def _device(device: Any) -> AuditDevice | None:
    if not isinstance(device, Mapping):
        return None
    system, value = _identifier(device, None)
    return AuditDevice(
        system=system,
        value=value,
        model=_text(device.get("model")),
        version=_text(device.get("version")),
    )
