"""A GP Connect consumer's provider lookup through the SDS API, as real consumers make it.

The GP Connect consumer adaptor (NHSDigital/integration-adaptor-gpc-consumer, SdsClient)
asks ``/Device?organization=…&identifier=<interaction>`` for the provider's ASID (for
``Ssp-To``), then ``/Endpoint?organization=…&identifier=<interaction>`` for its FHIR
service root (``address``) and ``nhsMHSId``; it takes the first entry of each and fails on
an empty Bundle. This does the same against the ``sds`` role (mhs.roles.sds), so a
simulated consumer finds providers where real ones must, not in our directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from mhs.directory.sds import ASID_SYSTEM, MHS_ID_SYSTEM
from mhs.directory.sds_query import INTERACTION_SYSTEM
from mhs.ids import ODS_SYSTEM


@dataclass(frozen=True, slots=True)
class ProviderRoute:
    """Where to send a GP Connect request to one organisation, as SDS names it."""

    asid: str
    address: str
    nhs_mhs_id: str


class SdsLookupFailed(RuntimeError):
    """SDS did not name a provider: the reason says which search and why."""


async def _search(
    session: aiohttp.ClientSession, url: str, params: dict[str, str], what: str
) -> dict[str, Any]:
    try:
        async with session.get(url, params=params) as response:
            body = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, ValueError) as error:
        raise SdsLookupFailed(f"{what}: SDS at {url} did not answer ({error})") from None
    if not isinstance(body, dict):
        raise SdsLookupFailed(f"{what}: SDS answered {status} with no FHIR resource")
    if status != 200:
        issues = body.get("issue") or [{}]
        raise SdsLookupFailed(f"{what}: SDS answered {status} ({issues[0].get('diagnostics')})")
    entries = body.get("entry") or []
    if not entries:
        raise SdsLookupFailed(f"{what}: SDS has no record ({params})")
    resource: dict[str, Any] = entries[0]["resource"]
    return resource


def _identifier(resource: dict[str, Any], system: str, what: str) -> str:
    for identifier in resource.get("identifier", ()):
        if identifier.get("system") == system:
            return str(identifier["value"])
    raise SdsLookupFailed(f"{what}: the record has no {system} identifier")


async def find_provider(
    session: aiohttp.ClientSession, sds_url: str, ods_code: str, interaction: str
) -> ProviderRoute:
    """The GP Connect provider at ``ods_code`` for ``interaction``, looked up in SDS."""
    params = {
        "organization": f"{ODS_SYSTEM}|{ods_code}",
        "identifier": f"{INTERACTION_SYSTEM}|{interaction}",
    }
    base = sds_url.rstrip("/")
    device = await _search(session, f"{base}/Device", params, "provider Device")
    endpoint = await _search(session, f"{base}/Endpoint", params, "provider Endpoint")
    address = endpoint.get("address")
    if not address:
        raise SdsLookupFailed("provider Endpoint: the record has no address")
    return ProviderRoute(
        asid=_identifier(device, ASID_SYSTEM, "provider Device"),
        address=str(address),
        nhs_mhs_id=_identifier(endpoint, MHS_ID_SYSTEM, "provider Endpoint"),
    )
