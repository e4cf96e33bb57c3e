"""Our directory in the shape of the SDS FHIR API: Devices (accredited systems) and Endpoints
(MHS records), as the NHS adaptors read them.

Shape from NHS Digital's SDS API (github.com/NHSDigital/spine-directory-service-api:
sds/request/fhir_json_mapper.py, mapper_urls.py, specification/components/examples) and
from what the MHS adaptor's SDS client reads (nhsconnect/integration-adaptor-mhs:
mhs_common/routing/sds_api_client.py): it asks ``/Device?organization=…&identifier=
<interaction>`` for the ASID and party key, then ``/Endpoint?identifier=<interaction>&
identifier=<party key>`` for the address, the nhsMhsFQDN / nhsMhsPartyKey / nhsMhsCPAId /
nhsMHSId identifiers and the Extension-SDS-ReliabilityConfiguration values.

- A Device is one accredited system (an instance, or Spine): identifiers nhsSpineASID and
  nhsMhsPartyKey, an Extension-SDS-NhsServiceInteractionId per interaction it is
  accredited for, ``owner`` its ODS code. Interaction ids are SDS's service-qualified ones
  (``urn:nhs:names:services:psis:REPC_IN150016UK05``); GP Connect's are their URNs.
- An Endpoint is one MHS record: a party key and one interaction. A messaging one's
  address is the MHS's inbound endpoint (Spine's own services: the Spine proxy's path for
  the pattern) with the interaction's reliability; a GP Connect one's is the practice's
  FHIR service root, with no reliability configuration (the directory has none for it).
- Where this stops: the topology records no manufacturing organisation, so a Device search
  naming one (the GP Connect consumer adaptor names its GPC_SUPPLIER_ODS_CODE when it looks
  up its own ASID) is answered as if it named none: SDS would narrow by it, we cannot.
  Practices sharing a party key share its Endpoints, which name the first such practice as
  managing organisation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from mhs.directory.directory import Directory, Party
from mhs.directory.model import Reliability
from mhs.directory.sds_query import (
    INTERACTION_SYSTEM,
    PARTY_KEY_SYSTEM,
    SdsQuery,
)
from mhs.ebxml import ACTOR_NEXT_MSH, ACTOR_TO_PARTY_MSH
from mhs.gpconnect.interactions import gpconnect_interaction, service_root
from mhs.ids import ODS_SYSTEM, new_id

ASID_SYSTEM = "https://fhir.nhs.uk/Id/nhsSpineASID"
FQDN_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsFQDN"
CPA_ID_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsCPAId"
MHS_ID_SYSTEM = "https://fhir.nhs.uk/Id/nhsMHSId"
RELIABILITY_URL = "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-ReliabilityConfiguration"
INTERACTION_URL = "https://fhir.nhs.uk/StructureDefinition/Extension-SDS-NhsServiceInteractionId"
_CONNECTION_TYPE = {
    "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
    "code": "hl7-fhir-msg",
    "display": "HL7 FHIR Messaging",
}
_PAYLOAD_TYPE = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                "code": "any",
                "display": "Any",
            }
        ]
    }
]
# Stable resource ids: the same record has the same id in every answer and every run.
_IDS = uuid.UUID("5d5f0c4e-3a55-4a7e-9c55-0b1d2f3e4a5b")


class Addressing(Protocol):
    """Where the simulator's own roles are (mhs.settings.Settings is one)."""

    def endpoint_of(self, mhs: str, registered: str) -> str: ...

    def gpconnect_of(self, mhs: str, registered: str | None) -> str | None: ...

    @property
    def proxy_url(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AsRecord:
    """An accredited system, as SDS holds it."""

    asid: str
    party_key: str
    ods_code: str
    interactions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MhsRecord:
    """An MHS record: where one party key receives one interaction."""

    party_key: str
    ods_code: str
    interaction: str
    address: str
    fqdn: str
    cpa_id: str
    reliability: Reliability | None
    actor: str | None


class SdsDirectory:
    """The directory's systems and MHS records, searched as the SDS API searches them."""

    def __init__(
        self, directory: Directory, addressing: Addressing, spine_paths: Mapping[str, str]
    ) -> None:
        self._directory = directory
        self._addressing = addressing
        self._spine_paths = spine_paths
        parties = [*directory.parties, *([directory.spine] if directory.spine else [])]
        self.devices = [self._as_record(party) for party in parties]
        endpoints: dict[tuple[str, str, str], MhsRecord] = {}
        for party in parties:
            for record in self._mhs_records(party):
                endpoints.setdefault((record.party_key, record.interaction, record.address), record)
        self.endpoints = list(endpoints.values())

    def service_id(self, interaction_id: str) -> str:
        """SDS's id for an interaction: service-qualified, or a GP Connect URN as it is."""
        interaction = self._directory.interaction(interaction_id)
        return f"{interaction.service}:{interaction_id}" if interaction else interaction_id

    def _as_record(self, party: Party) -> AsRecord:
        ids = sorted(self.service_id(i) for i in party.interactions)
        return AsRecord(party.asid, party.party_key, party.ods_code, tuple(ids))

    def _mhs_records(self, party: Party) -> Iterable[MhsRecord]:
        for interaction_id in sorted(party.interactions):
            gpc = gpconnect_interaction(interaction_id)
            if gpc is not None:
                base = self._addressing.gpconnect_of(party.mhs, party.gpconnect_endpoint)
                if base is None:
                    continue
                address = service_root(base, party.ods_code, gpc.capability)
                yield self._record(party, interaction_id, address, None)
                continue
            interaction = self._directory.interaction(interaction_id)
            if interaction is None:
                continue
            if party.spine:
                path = self._spine_paths[interaction.pattern]
                address = self._addressing.proxy_url + path
            else:
                address = self._addressing.endpoint_of(party.mhs, party.endpoint)
            yield self._record(party, interaction_id, address, interaction.reliability)

    def _record(
        self, party: Party, interaction_id: str, address: str, reliability: Reliability | None
    ) -> MhsRecord:
        actor = None
        if reliability is not None and reliability.ack_requested == "always":
            interaction = self._directory.interaction(interaction_id)
            forward = interaction is not None and interaction.pattern == "forward-reliable"
            actor = ACTOR_NEXT_MSH if forward else ACTOR_TO_PARTY_MSH
        fqdn = (party.fqdn if reliability is not None and not party.spine else "") or (
            urlsplit(address).hostname or ""
        )
        return MhsRecord(
            party_key=party.party_key,
            ods_code=party.ods_code,
            interaction=self.service_id(interaction_id),
            address=address,
            fqdn=fqdn,
            cpa_id=party.cpa_id,
            reliability=reliability,
            actor=actor,
        )

    def find_devices(self, query: SdsQuery) -> list[dict[str, Any]]:
        """The Device resources matching ``query`` (organization and interaction given)."""
        return [
            device_resource(record)
            for record in self.devices
            if record.ods_code == query.organization
            and query.interaction in record.interactions
            and query.party_key in (None, record.party_key)
            # query.manufacturer is not applied: no system here records its manufacturer.
        ]

    def find_endpoints(self, query: SdsQuery) -> list[dict[str, Any]]:
        """The Endpoint resources matching ``query``."""
        return [
            endpoint_resource(record)
            for record in self.endpoints
            if query.organization in (None, record.ods_code)
            and query.interaction in (None, record.interaction)
            and query.party_key in (None, record.party_key)
        ]


def _identifier(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


def _interaction_extension(service_id: str) -> dict[str, Any]:
    reference = {"identifier": _identifier(INTERACTION_SYSTEM, service_id)}
    return {"url": INTERACTION_URL, "valueReference": reference}


def device_resource(record: AsRecord) -> dict[str, Any]:
    """A Device: the accredited system's ASID, party key, interactions and owner."""
    return {
        "resourceType": "Device",
        "id": str(uuid.uuid5(_IDS, f"device|{record.asid}")).upper(),
        "identifier": [
            _identifier(ASID_SYSTEM, record.asid),
            _identifier(PARTY_KEY_SYSTEM, record.party_key),
        ],
        "extension": [_interaction_extension(i) for i in record.interactions],
        "owner": {"identifier": _identifier(ODS_SYSTEM, record.ods_code)},
    }


def _reliability_extension(record: MhsRecord) -> dict[str, Any] | None:
    if record.reliability is None:
        return None
    values = record.reliability.model_dump(mode="json")  # durations as ISO-8601, as SDS
    attributes: list[dict[str, Any]] = [
        {"url": "nhsMHSSyncReplyMode", "valueString": values["sync_reply_mode"]},
        {"url": "nhsMHSRetryInterval", "valueString": values["retry_interval"]},
        {"url": "nhsMHSRetries", "valueInteger": values["retries"]},
        {"url": "nhsMHSPersistDuration", "valueString": values["persist_duration"]},
        {"url": "nhsMHSDuplicateElimination", "valueString": values["duplicate_elimination"]},
        {"url": "nhsMHSAckRequested", "valueString": values["ack_requested"]},
    ]
    if record.actor is not None:
        attributes.append({"url": "nhsMHSActor", "valueString": record.actor})
    return {"url": RELIABILITY_URL, "extension": attributes}


def endpoint_resource(record: MhsRecord) -> dict[str, Any]:
    """An Endpoint: the MHS record's address, identifiers and reliability configuration."""
    key = f"endpoint|{record.party_key}|{record.interaction}|{record.address}"
    reliability = _reliability_extension(record)
    return {
        "resourceType": "Endpoint",
        "id": str(uuid.uuid5(_IDS, key)).upper(),
        "status": "active",
        "connectionType": _CONNECTION_TYPE,
        "payloadType": _PAYLOAD_TYPE,
        "address": record.address,
        "managingOrganization": {"identifier": _identifier(ODS_SYSTEM, record.ods_code)},
        "identifier": [
            _identifier(FQDN_SYSTEM, record.fqdn),
            _identifier(PARTY_KEY_SYSTEM, record.party_key),
            _identifier(CPA_ID_SYSTEM, record.cpa_id),
            _identifier(MHS_ID_SYSTEM, record.cpa_id),
        ],
        "extension": [
            *([reliability] if reliability is not None else []),
            _interaction_extension(record.interaction),
        ],
    }


def search_bundle(resources: list[dict[str, Any]], self_url: str, base_url: str) -> dict[str, Any]:
    """A searchset Bundle of ``resources``: each entry's fullUrl is ``base_url`` + its id."""
    return {
        "resourceType": "Bundle",
        "id": new_id(),
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {"fullUrl": base_url + r["id"], "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }
