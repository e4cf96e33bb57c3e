"""The SSP's checks, in the order the simulator applies them (docs/spine-proxy.md).

``CHECK_ORDER`` is that order; each name is a method of ``_Checks``, run in turn until one
refuses. Some apply only to the GP Connect (FHIR) path, or only with TLS mutual
authentication on; the ebXML path's message checks follow in the proxy role.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from mhs.directory import Directory, Party
from mhs.gpconnect.interactions import GpcInteraction, gpconnect_interaction, service_root
from mhs.ids import is_asid, is_uuid
from mhs.settings import Settings
from mhs.ssp.jwt_claims import JwtPolicy, JwtRefused, check_token, requesting_ods
from mhs.ssp.nhs_number import NHS_NUMBER_SYSTEM, nhs_number_problem
from mhs.ssp.origin import not_originating
from mhs.ssp.outcome import Refusal

CHECK_ORDER = (
    "client_certificate",
    "headers_present",
    "headers_well_formed",
    "client_certificate_name",
    "interaction_known",
    "interaction_matches_request",
    "jwt",
    "receiver_registered",
    "sender_accredited",
    "receiver_accredited",
    "endpoint",
    "originating_organisation",
    "data_sharing_agreement",
    "nhs_number",
)


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """The TLS client certificate's names (DNS and IP subject alternative names, else the
    common name); empty when the client presented none."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FhirCall:
    """A GP Connect request as the SSP sees it: ``target`` is everything after the proxy's
    own address (``https://provider/ODS/STU3/1/gpconnect/Patient``), query excluded."""

    method: str
    target: str
    query: str = ""
    authorization: str | None = None
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class SspRequest:
    """The Ssp-* headers of one request (None where missing), and what else the checks read:
    the client certificate (None when TLS mutual authentication is off) and, on the GP
    Connect path, the FHIR call."""

    trace_id: str | None
    from_asid: str | None
    to_asid: str | None
    interaction_id: str | None
    client: ClientCertificate | None = None
    fhir: FhirCall | None = None


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What the checks read besides the request: JWT timing, the clock, and where each
    MHS's GP Connect providers really are (MHS name -> base URL overrides)."""

    jwt: JwtPolicy = field(default_factory=JwtPolicy)
    now: Callable[[], float] = time.time
    gpconnect_overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings) -> CheckContext:
        """The check settings of this deployment."""
        return cls(
            jwt=JwtPolicy(settings.jwt_timing, settings.jwt_leeway_s),
            gpconnect_overrides=settings.gpconnect_overrides,
        )

    def gpconnect_base(self, party: Party) -> str | None:
        return self.gpconnect_overrides.get(party.mhs, party.gpconnect_endpoint)


def check_request(
    directory: Directory, request: SspRequest, context: CheckContext | None = None
) -> Refusal | None:
    """None if Spine would pass the request on, else why it refuses it (CHECK_ORDER)."""
    checks = _Checks(directory, request, context or CheckContext())
    for name in CHECK_ORDER:
        refusal: Refusal | None = getattr(checks, name)()
        if refusal is not None:
            return refusal
    return None


def fhir_path(target: str) -> str:
    """The decoded path of a GP Connect target URL."""
    return unquote(urlsplit(target).path)


class _Checks:
    """One method per check; each may rely on the ones before it having passed."""

    def __init__(self, directory: Directory, request: SspRequest, context: CheckContext) -> None:
        self.directory = directory
        self.request = request
        self.context = context
        self.fhir = request.fhir
        self.gpc: GpcInteraction | None = None
        self.sender: Party | None = None
        self.receiver: Party | None = None
        self.claims: dict[str, Any] = {}

    @property
    def _from(self) -> str:
        assert self.request.from_asid is not None
        return self.request.from_asid

    @property
    def _to(self) -> str:
        assert self.request.to_asid is not None
        return self.request.to_asid

    @property
    def _interaction(self) -> str:
        assert self.request.interaction_id is not None
        return self.request.interaction_id

    def client_certificate(self) -> Refusal | None:
        client = self.request.client
        if client is not None and not client.names:
            return Refusal.certificate_required()
        return None

    def headers_present(self) -> Refusal | None:
        request = self.request
        headers = [
            ("Ssp-TraceID", request.trace_id),
            ("Ssp-From", request.from_asid),
            ("Ssp-To", request.to_asid),
            ("Ssp-InteractionID", request.interaction_id),
        ]
        if self.fhir is not None:
            headers.append(("Authorization", self.fhir.authorization))
        missing = [name for name, value in headers if value is None or not value.strip()]
        if missing:
            return Refusal.bad_request(f"missing header(s): {', '.join(missing)}")
        return None

    def headers_well_formed(self) -> Refusal | None:
        trace_id = self.request.trace_id or ""
        if not is_uuid(trace_id):
            return Refusal.bad_request(f"Ssp-TraceID {_shown(trace_id)} is not a UUID")
        for name, asid in (("Ssp-From", self._from), ("Ssp-To", self._to)):
            if not is_asid(asid):
                return Refusal.bad_request(f"{name} {_shown(asid)} is not a 12-digit ASID")
        return None

    def client_certificate_name(self) -> Refusal | None:
        client = self.request.client
        if client is None:
            return None
        sender = self.directory.by_asid(self._from)
        if sender is None:
            return Refusal.certificate_mismatch(
                f"no FQDN is registered for Ssp-From {self._from}, so no certificate matches it"
            )
        if sender.fqdn.lower() not in {name.lower() for name in client.names}:
            return Refusal.certificate_mismatch(
                f"the client certificate names {', '.join(client.names)}, not {sender.fqdn}, "
                f"the FQDN registered for Ssp-From {self._from}"
            )
        return None

    def interaction_known(self) -> Refusal | None:
        interaction_id = self._interaction
        if self.fhir is None:
            known = self.directory.interaction(interaction_id) is not None
        else:
            self.gpc = gpconnect_interaction(interaction_id)
            known = self.gpc is not None
        if not known:
            return Refusal.bad_request(f"Ssp-InteractionID {_shown(interaction_id)} is not known")
        return None

    def interaction_matches_request(self) -> Refusal | None:
        if self.fhir is None:
            return None
        assert self.gpc is not None
        path = fhir_path(self.fhir.target)
        if not self.gpc.matches(self.fhir.method, path):
            return Refusal.bad_request(
                f"Ssp-InteractionID {self.gpc.urn} is {self.gpc.method} .../{self.gpc.path}, "
                f"not {self.fhir.method} {_shown(path)}"
            )
        return None

    def jwt(self) -> Refusal | None:
        if self.fhir is None:
            return None
        assert self.gpc is not None
        try:
            self.claims = check_token(
                self.fhir.authorization, self.gpc, self.context.jwt, self.context.now()
            )
        except JwtRefused as refused:
            return refused.refusal
        return None

    def receiver_registered(self) -> Refusal | None:
        self.receiver = self.directory.by_asid(self._to)
        if self.receiver is None:
            return Refusal.bad_request(f"Ssp-To {self._to} is not a registered ASID")
        return None

    def sender_accredited(self) -> Refusal | None:
        self.sender = self.directory.by_asid(self._from)
        if self.sender is None or not self.sender.accredited_for(self._interaction):
            return Refusal.sender_not_accredited(self._from)
        return None

    def receiver_accredited(self) -> Refusal | None:
        assert self.receiver is not None
        if not self.receiver.accredited_for(self._interaction):
            return Refusal.receiver_not_accredited(self._to)
        return None

    def endpoint(self) -> Refusal | None:
        if self.fhir is None:
            return None
        assert self.gpc is not None
        assert self.receiver is not None
        base = self.context.gpconnect_base(self.receiver)
        registered = (
            service_root(base, self.receiver.ods_code, self.gpc.capability) if base else "NONE"
        )
        target = self.fhir.target
        rest = target[len(registered) + 1 :] if target.startswith(registered + "/") else None
        if rest is not None and fhir_path(rest) == self.gpc.path:
            return None
        suffix = "/" + self.gpc.path
        shown = target[: -len(suffix)] if target.endswith(suffix) else target
        return Refusal.endpoint_varies(registered, self.receiver.cpa_id, shown)

    def originating_organisation(self) -> Refusal | None:
        if self.fhir is None:
            return None
        assert self.sender is not None
        # The jwt check has made sure requesting_organization carries an ODS code.
        named = requesting_ods(self.claims) or ""
        if not self.sender.may_request_for(named):
            return Refusal.access_denied(not_originating(self.sender, named))
        return None

    def data_sharing_agreement(self) -> Refusal | None:
        assert self.sender is not None
        assert self.receiver is not None
        if not self.directory.has_agreement(self.sender.ods_code, self.receiver.ods_code):
            return Refusal.no_agreement(self._from, self._to)
        return None

    def nhs_number(self) -> Refusal | None:
        if self.fhir is None:
            return None
        for number in _nhs_numbers(self.fhir):
            problem = nhs_number_problem(number)
            if problem is not None:
                return Refusal.invalid_nhs_number(problem)
        return None


def _shown(value: str) -> str:
    return repr(value if len(value) <= 64 else value[:64] + "...")


def nhs_numbers_in_query(query: str) -> list[str]:
    """NHS numbers named by ``identifier=https://fhir.nhs.uk/Id/nhs-number|<n>``."""
    found = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        system, bar, number = value.partition("|")
        if name == "identifier" and bar and system == NHS_NUMBER_SYSTEM:
            found.append(number)
    return found


def nhs_numbers_in_parameters(body: Any) -> list[str] | None:
    """NHS numbers in a FHIR Parameters resource's ``patientNHSNumber``; None when ``body``
    is not a Parameters resource."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        return None
    found = []
    for parameter in body.get("parameter") or []:
        if isinstance(parameter, dict) and parameter.get("name") == "patientNHSNumber":
            identifier = parameter.get("valueIdentifier")
            if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
                found.append(identifier["value"])
    return found


def _nhs_numbers(call: FhirCall) -> list[str]:
    found = nhs_numbers_in_query(call.query)
    if call.body:
        # The SSP is content-agnostic: a body it cannot read is the provider's to refuse.
        try:
            from_body = nhs_numbers_in_parameters(orjson.loads(call.body))
        except orjson.JSONDecodeError:
            from_body = None
        found += from_body or []
    return found
