"""The simulated GP Connect provider: what it answers to one request, transport aside.

A provider routes by URL (the ODS code in the service root), never by Ssp-* headers, and
checks as the reference's provider checklist says: every Ssp-* header present, Ssp-To its
own ASID, Ssp-InteractionID fitting the URL called, and the bearer JWT valid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from mhs.directory import Party
from mhs.gpconnect.fhir import negotiate
from mhs.gpconnect.interactions import (
    GPCONNECT_INTERACTIONS,
    ROUTING_SEGMENTS,
    Capability,
    GpcInteraction,
    service_root,
)
from mhs.provider.records import (
    capability_statement,
    find_patient,
    patient_resource,
    searchset,
    structured_record,
)
from mhs.ssp.checks import nhs_numbers_in_parameters
from mhs.ssp.jwt_claims import JwtPolicy, JwtRefused, check_token
from mhs.ssp.nhs_number import NHS_NUMBER_SYSTEM, nhs_number_problem
from mhs.ssp.outcome import Refusal

SSP_HEADERS = ("Ssp-TraceID", "Ssp-From", "Ssp-To", "Ssp-InteractionID")
JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """One request as the provider sees it; ``path`` is decoded, ``query`` as sent."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    """The status and resource to send, and what the request turned out to be."""

    status: int
    resource: dict[str, Any] | None = None
    refusal: Refusal | None = None
    party: Party | None = None
    interaction: GpcInteraction | None = None


class Provider:
    """The GP Connect provider endpoints of ``parties``, under ``base`` URLs per party."""

    def __init__(
        self,
        parties: Iterable[tuple[Party, str]],
        policy: JwtPolicy,
        now: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.now = now
        self._roots: dict[str, tuple[Party, Capability]] = {}
        for party, base in parties:
            for capability in ROUTING_SEGMENTS:
                root = urlsplit(service_root(base, party.ods_code, capability)).path
                self._roots[root] = (party, capability)

    @property
    def parties(self) -> list[Party]:
        return list({party.asid: party for party, _ in self._roots.values()}.values())

    def _route(self, path: str) -> tuple[Party, Capability, str] | None:
        # The structured root extends the foundations one, so the longest root wins.
        best: tuple[Party, Capability, str] | None = None
        for root, (party, capability) in self._roots.items():
            if path.startswith(root + "/") and (best is None or len(root) > len(best[2])):
                best = (party, capability, root)
        if best is None:
            return None
        party, capability, root = best
        return party, capability, path[len(root) + 1 :]

    def answer(self, request: ProviderRequest) -> ProviderAnswer:
        routed = self._route(request.path)
        if routed is None:
            return ProviderAnswer(
                404,
                refusal=Refusal(
                    404,
                    "not-found",
                    "ORGANISATION_NOT_FOUND",
                    f"no GP Connect service root here serves {request.path[:200]!r}",
                ),
            )
        party, capability, fhir = routed
        interaction = next(
            (
                i
                for i in GPCONNECT_INTERACTIONS.values()
                if i.capability == capability
                and i.path == fhir
                and i.method == request.method
                and party.accredited_for(i.urn)
            ),
            None,
        )
        if interaction is None:
            return ProviderAnswer(
                501,
                refusal=Refusal(
                    501,
                    "not-supported",
                    "NOT_IMPLEMENTED",
                    f"{party.ods_code} does not serve {request.method} {fhir[:200]!r} "
                    f"under its {capability} service root",
                ),
                party=party,
            )
        refusal = self._check(request, party, interaction)
        if refusal is not None:
            return ProviderAnswer(
                refusal.status, refusal=refusal, party=party, interaction=interaction
            )
        status, resource, refusal = self._serve(request, party, interaction)
        return ProviderAnswer(status, resource, refusal, party, interaction)

    def _check(
        self, request: ProviderRequest, party: Party, interaction: GpcInteraction
    ) -> Refusal | None:
        headers = request.headers
        missing = [name for name in SSP_HEADERS if not (headers.get(name) or "").strip()]
        if missing:
            return Refusal.bad_request(f"missing header(s): {', '.join(missing)}")
        if headers.get("Ssp-To") != party.asid:
            return Refusal.bad_request(
                f"Ssp-To {headers.get('Ssp-To')!r} is not {party.asid}, the ASID of the "
                f"provider at {party.ods_code}"
            )
        if headers.get("Ssp-InteractionID") != interaction.urn:
            return Refusal.bad_request(
                f"Ssp-InteractionID {headers.get('Ssp-InteractionID')!r} does not fit "
                f"{interaction.method} .../{interaction.path} ({interaction.urn})"
            )
        try:
            check_token(headers.get("Authorization"), interaction, self.policy, self.now())
        except JwtRefused as refused:
            return refused.refusal
        asked = negotiate(
            headers.get("Accept"), _query(request.query).get("_format"), headers.get("Content-Type")
        )
        if asked is None:
            return Refusal(
                415,
                "not-supported",
                "UNSUPPORTED_MEDIA_TYPE",
                "answers are application/fhir+json or application/fhir+xml",
            )
        return None

    def _serve(
        self, request: ProviderRequest, party: Party, interaction: GpcInteraction
    ) -> tuple[int, dict[str, Any] | None, Refusal | None]:
        if interaction.path == "metadata":
            usable = [i for i in GPCONNECT_INTERACTIONS.values() if party.accredited_for(i.urn)]
            return 200, capability_statement(party.ods_code, usable, interaction.capability), None
        if interaction.path == "Patient":
            return self._search(request, party)
        return self._structured(request, party)

    def _search(
        self, request: ProviderRequest, party: Party
    ) -> tuple[int, dict[str, Any] | None, Refusal | None]:
        identifiers = [
            v for k, v in parse_qsl(request.query, keep_blank_values=True) if k == "identifier"
        ]
        if len(identifiers) != 1:
            return _refused(
                Refusal.bad_request(
                    f"one identifier parameter ({NHS_NUMBER_SYSTEM}|<NHS number>) is required, "
                    f"got {len(identifiers)}"
                )
            )
        system, bar, number = identifiers[0].partition("|")
        if not bar or system != NHS_NUMBER_SYSTEM:
            return _refused(
                Refusal(
                    400,
                    "value",
                    "INVALID_IDENTIFIER_SYSTEM",
                    f"identifier system must be {NHS_NUMBER_SYSTEM}, got {system[:100]!r}",
                )
            )
        problem = nhs_number_problem(number)
        if problem is not None:
            return _refused(Refusal.invalid_nhs_number(problem))
        patient = find_patient(party.ods_code, number)
        return 200, searchset([patient_resource(patient)] if patient else []), None

    def _structured(
        self, request: ProviderRequest, party: Party
    ) -> tuple[int, dict[str, Any] | None, Refusal | None]:
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in JSON_TYPES:
            return _refused(
                Refusal(
                    415,
                    "not-supported",
                    "UNSUPPORTED_MEDIA_TYPE",
                    f"the Parameters body must be application/fhir+json, got {content_type!r}",
                )
            )
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError as error:
            return _refused(Refusal.bad_request(f"the body is not valid JSON: {error}"))
        numbers = nhs_numbers_in_parameters(body)
        if numbers is None:
            return _refused(Refusal.invalid_resource("the body must be a FHIR Parameters resource"))
        if len(numbers) != 1:
            return _refused(
                Refusal(
                    422,
                    "invalid",
                    "INVALID_PARAMETER",
                    "exactly one patientNHSNumber parameter with a valueIdentifier is required",
                )
            )
        problem = nhs_number_problem(numbers[0])
        if problem is not None:
            return _refused(Refusal.invalid_nhs_number(problem))
        patient = find_patient(party.ods_code, numbers[0])
        if patient is None:
            return _refused(
                Refusal(
                    404,
                    "not-found",
                    "PATIENT_NOT_FOUND",
                    f"no patient with NHS number {numbers[0]} is registered at {party.ods_code}",
                )
            )
        return 200, structured_record(patient, party.name), None


def _refused(refusal: Refusal) -> tuple[int, None, Refusal]:
    return refusal.status, None, refusal


def _query(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))
