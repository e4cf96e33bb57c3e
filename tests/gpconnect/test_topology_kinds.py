"""GP Connect's four consumer topologies on real roles (outbound -> Spine proxy ->
gp-provider), as the packaged default topology registers them: per kind an allowed request
reaches the provider as its originating organisation, one without an agreement gets the
SSP's refusal, the portals' ASID rules hold in both modes, a TIE system cannot send as
another, and a topology file that breaks a kind's shape fails at load naming the entry."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from mhs.directory import TopologyError, load_topology
from mhs.gpconnect.interactions import service_root
from mhs.ssp import Refusal
from mhs.ssp.consumer_jwt import consumer_claims, consumer_jwt
from mhs.ssp.jwt_claims import encode_unsigned
from mhs.ssp.outcome import operation_outcome
from tests.gpconnect.test_round_trip import METADATA, _call

pytestmark = pytest.mark.rabbitmq

ROLES = ("gp-provider", "spine-proxy", "outbound")
ROOT = Path(__file__).parents[2]
AUDIENCE = "https://provider.invalid"
DATACENTRE = "918000000001"  # A80001, a practice of the supplier datacentre
CMA = "938000000001"  # C80001
TIE_PORTAL, TIE_EPR = "948000000001", "948000000002"  # both R8T01
HOST_RULE = "958000000001"  # P80001, for participants P80002 and P80003
PER_ORG_HOST, PER_ORG_Q2, PER_ORG_Q3 = "968000000001", "968000000002", "968000000003"


async def _entries(h: Any) -> list[dict[str, Any]]:
    async with h.http.get(h.url("gp-provider") + "/audit") as response:
        assert response.status == 200, await response.text()
        entries: list[dict[str, Any]] = orjson.loads(await response.read())["entries"]
        return entries


def _issue(body: bytes) -> dict[str, Any]:
    outcome = orjson.loads(body)
    assert outcome["resourceType"] == "OperationOutcome", outcome
    issue: dict[str, Any] = outcome["issue"][0]
    return issue


def _exactly(body: bytes, refusal: Refusal) -> None:
    """``body`` is the SSP's OperationOutcome for ``refusal``, its random id aside."""
    outcome = orjson.loads(body)
    del outcome["id"]
    expected = operation_outcome(refusal)
    del expected["id"]
    assert outcome == expected


async def _metadata(
    h: Any, sender: str, provider_ods: str, ods_code: str | None = None
) -> tuple[aiohttp.ClientResponse, bytes]:
    jwt = consumer_jwt(audience=AUDIENCE, ods_code=ods_code, organization_name="Org")
    return await _call(
        h, "GET", f"/gpconnect/{provider_ods}/metadata", METADATA, sender=sender, jwt=jwt
    )


async def _to_proxy(
    h: Any, sender: str, provider_ods: str, ods_code: str
) -> tuple[aiohttp.ClientResponse, bytes]:
    """Straight to the Spine proxy, as a consumer outside our outbound MHS would send."""
    provider = h.directory.gpconnect_provider(provider_ods)
    base = h.settings.gpconnect_overrides["datacentre"]
    target = service_root(base, provider_ods, "foundations") + "/metadata"
    headers = {
        "Ssp-TraceID": str(uuid.uuid4()),
        "Ssp-From": sender,
        "Ssp-To": provider.asid,
        "Ssp-InteractionID": METADATA,
        "Authorization": "Bearer "
        + consumer_jwt(audience=AUDIENCE, ods_code=ods_code, organization_name="Org"),
    }
    async with h.http.get(f"{h.url('spine-proxy')}/{target}", headers=headers) as response:
        return response, await response.read()


# Per kind: the sender's ASID, the provider, the organisation the JWT names (None: the
# outbound MHS fills in the sender's own) and the originating organisation the provider sees.
ALLOWED = {
    "mhs": (DATACENTRE, "A80002", None, "A80001"),
    "cma": (CMA, "A80001", None, "C80001"),
    "tie": (TIE_EPR, "A80002", None, "R8T01"),
    "portal-host-rule-for-a-participant": (HOST_RULE, "A80003", "P80002", "P80002"),
    "portal-host-rule-for-the-host": (HOST_RULE, "A80003", None, "P80001"),
    "portal-per-organisation": (PER_ORG_Q2, "A80004", None, "Q80002"),
    "portal-per-organisation-named": (PER_ORG_Q3, "A80005", "Q80003", "Q80003"),
}


@pytest.mark.parametrize("kind", ALLOWED)
async def test_an_allowed_request_reaches_the_provider_as_its_originating_organisation(
    harness_factory: Any, tmp_path: Path, kind: str
) -> None:
    sender, provider_ods, named, originating = ALLOWED[kind]
    h = await harness_factory(ROLES, audit_dir=tmp_path)
    response, body = await _metadata(h, sender, provider_ods, named)
    assert response.status == 200, body
    assert orjson.loads(body)["resourceType"] == "CapabilityStatement"
    [entry] = await _entries(h)
    assert entry["consumer_asid"] == sender
    assert entry["organisation"]["ods_code"] == originating
    assert entry["provider_ods"] == provider_ods


@pytest.mark.parametrize(
    ("sender", "provider_ods"),
    [
        (DATACENTRE, "A80009"),  # mhs: another region
        (CMA, "A80002"),  # cma: agrees with A80001 only
        (TIE_PORTAL, "A80009"),  # tie: R8T01 agrees with A80002 only
        (HOST_RULE, "A80001"),  # portal, host rule: P80001 agrees with A80003 only
        (PER_ORG_Q3, "A80004"),  # portal, per organisation: Q80003 agrees with A80005 only
    ],
)
async def test_a_pair_without_an_agreement_gets_the_ssps_refusal(
    harness_factory: Any, tmp_path: Path, sender: str, provider_ods: str
) -> None:
    h = await harness_factory(ROLES, audit_dir=tmp_path)
    response, body = await _metadata(h, sender, provider_ods)
    provider = h.directory.gpconnect_provider(provider_ods)
    assert response.status == 403, body
    _exactly(body, Refusal.no_agreement(sender, provider.asid))
    assert await _entries(h) == []  # refused by the SSP: it never reached the provider


async def test_a_host_rule_portal_sends_only_for_its_participants(
    harness_factory: Any, tmp_path: Path
) -> None:
    h = await harness_factory(ROLES, audit_dir=tmp_path)
    # Q80002 uses the other portal, not this one: refused before it leaves our MHS ...
    response, body = await _metadata(h, HOST_RULE, "A80003", "Q80002")
    assert response.status == 403, body
    issue = _issue(body)
    assert issue["details"]["coding"][0]["display"] == "ACCESS_DENIED"
    assert (
        "'Q80002' does not participate in the portal of ASID 958000000001" in (issue["diagnostics"])
    )
    # ... and by the SSP when sent to it directly.
    response, body = await _to_proxy(h, HOST_RULE, "A80003", "Q80002")
    assert response.status == 403, body
    issue = _issue(body)
    assert issue["details"]["coding"][0]["display"] == "ACCESS_DENIED"
    assert "does not participate" in issue["diagnostics"]
    # A participant through the SSP directly passes that check, as the host's own does.
    for named in ("P80003", "P80001"):
        response, body = await _to_proxy(h, HOST_RULE, "A80003", named)
        assert response.status == 200, (named, body)
    assert [e["organisation"]["ods_code"] for e in await _entries(h)] == ["P80003", "P80001"]


async def test_a_per_organisation_portal_never_sends_one_organisations_asid_for_another(
    harness_factory: Any, tmp_path: Path
) -> None:
    h = await harness_factory(ROLES, audit_dir=tmp_path)
    # The provisioning organisation's ASID for a participant, and a participant's for another.
    for sender, named in ((PER_ORG_HOST, "Q80002"), (PER_ORG_Q2, "Q80003")):
        response, body = await _metadata(h, sender, "A80004", named)
        assert response.status == 403, body
        issue = _issue(body)
        assert issue["details"]["coding"][0]["display"] == "ACCESS_DENIED"
        assert "never the provisioning organisation's" in issue["diagnostics"]
        response, body = await _to_proxy(h, sender, "A80004", named)
        assert response.status == 403, body
        assert _issue(body)["details"]["coding"][0]["display"] == "ACCESS_DENIED"
    # The host's ASID for the host itself is allowed (Q80001 agrees with A80004).
    response, body = await _metadata(h, PER_ORG_HOST, "A80004")
    assert response.status == 200, body
    assert [e["organisation"]["ods_code"] for e in await _entries(h)] == ["Q80001"]


async def test_a_tie_system_cannot_send_with_another_systems_asid(
    harness_factory: Any, tmp_path: Path
) -> None:
    h = await harness_factory(ROLES, audit_dir=tmp_path)
    jwt = consumer_jwt(audience=AUDIENCE)
    sent = {"Mhs-Credential": h.token(TIE_PORTAL), "Ssp-From": TIE_EPR}
    response, body = await _call(
        h, "GET", "/gpconnect/A80002/metadata", METADATA, sender=TIE_PORTAL, jwt=jwt, headers=sent
    )
    assert response.status == 403, body
    issue = _issue(body)
    assert issue["details"]["coding"][0]["display"] == "ACCESS_DENIED"
    assert issue["diagnostics"] == "Ssp-From '948000000002' is not the ASID of this credential"
    # Each system sends as itself, with its own ASID, for the one organisation.
    for system in (TIE_PORTAL, TIE_EPR):
        response, body = await _metadata(h, system, "A80002")
        assert response.status == 200, body
    entries = await _entries(h)
    assert [e["consumer_asid"] for e in entries] == [TIE_PORTAL, TIE_EPR]
    assert {e["organisation"]["ods_code"] for e in entries} == {"R8T01"}


def _raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (ROOT / "mhs/directory/default-topology.yaml").read_text()
    )
    return data


def _entry(data: dict[str, Any], name: str) -> dict[str, Any]:
    entry: dict[str, Any] = next(m for m in data["mhs"] if m["name"] == name)
    return entry


def _second_instance(data: dict[str, Any], name: str) -> None:
    entry = _entry(data, name)
    extra = {**entry["instances"][0], "asid": "999000000001", "party_key": "ZZ001-0000001"}
    extra["credential"] = "dev-a-credential-of-its-own"
    entry["instances"].append(extra)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: _second_instance(d, "cma"),
            "mhs[2] (cma): kind cma: a CMA is one system with one ASID: exactly one "
            "instance, found 2",
        ),
        (
            lambda d: _entry(d, "trust-tie")["instances"].__delitem__(slice(1, None)),
            "mhs[3] (trust-tie): kind tie: a TIE fronts several systems",
        ),
        (
            lambda d: _entry(d, "trust-tie")["instances"][2].__setitem__("ods_code", "R8T02"),
            "mhs[3] (trust-tie): kind tie: the systems behind a TIE are one organisation's, "
            "found ['R8T01', 'R8T02']",
        ),
        (
            lambda d: _entry(d, "portal-host-rule").pop("portal"),
            "mhs[4] (portal-host-rule): kind portal: a portal needs portal:",
        ),
        (
            lambda d: _second_instance(d, "portal-host-rule"),
            "mhs[4] (portal-host-rule): kind portal: under asid_rule host the hosting "
            "organisation's one ASID sends for everyone",
        ),
        (
            lambda d: _entry(d, "portal-host-rule")["portal"]["participants"].append("P80001"),
            "mhs[4] (portal-host-rule): kind portal: the host P80001 is listed among its own",
        ),
        (
            lambda d: _entry(d, "portal-per-organisation")["instances"].pop(),
            "mhs[5] (portal-per-organisation): kind portal: under asid_rule per-organisation "
            "every organisation has its own ASID: one instance each for "
            "['Q80001', 'Q80002', 'Q80003'], found ['Q80001', 'Q80002']",
        ),
        (
            lambda d: _entry(d, "portal-per-organisation")["portal"].__setitem__(
                "asid_rule", "shared"
            ),
            "mhs[5] (portal-per-organisation).portal.asid_rule: Input should be 'host' or "
            "'per-organisation'",
        ),
        (
            lambda d: _entry(d, "datacentre").__setitem__("portal", {}),
            "mhs[0] (datacentre).portal.host: Field required",
        ),
        (
            lambda d: _entry(d, "cma").__setitem__("kind", "hub"),
            "mhs[2] (cma).kind: Input should be 'mhs', 'cma', 'tie' or 'portal'",
        ),
    ],
)
def test_a_topology_breaking_its_kind_fails_at_load_naming_the_entry(
    tmp_path: Path, mutate: Any, expected: str
) -> None:
    data = _raw()
    mutate(data)
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    assert f"{path}: {expected}" in str(caught.value)


def test_a_portal_block_on_another_kind_is_refused(tmp_path: Path) -> None:
    data = _raw()
    _entry(data, "cma")["portal"] = dict(_entry(data, "portal-host-rule")["portal"])
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TopologyError, match=r"mhs\[2\] \(cma\): kind cma: only a kind: portal"):
        load_topology(path)


def test_agreements_may_name_a_host_rule_portals_participants(tmp_path: Path) -> None:
    data = _raw()
    data["agreements"].append(["P80002", "A80009"])
    data["agreements"].append(["P80009", "A80009"])  # participates nowhere: unknown
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TopologyError, match="names unknown ODS code 'P80009'"):
        load_topology(path)
    data["agreements"].pop()
    path.write_text(yaml.safe_dump(data))
    assert load_topology(path).has_agreement("P80002", "A80009")


def _token(change: Any, **claims: Any) -> str:
    edited = consumer_claims(audience=AUDIENCE, ods_code="R8T01", **claims)
    change(edited)
    return encode_unsigned(edited)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (
            lambda c: c.update(exp=c["iat"] + 299),
            Refusal.bad_request("Authorization: exp must be iat + 300, got exp - iat = 299"),
        ),
        (
            lambda c: c.update(sub="someone-else"),
            Refusal.bad_request("Authorization: sub must equal requesting_practitioner.id"),
        ),
        (
            lambda c: c.pop("reason_for_request"),
            Refusal.bad_request("Authorization: the JWT lacks claim(s): reason_for_request"),
        ),
        (
            lambda c: c.update(reason_for_request="secondarycare"),
            Refusal.bad_request(
                "Authorization: reason_for_request must be 'directcare' (or 'migration'), "
                "got 'secondarycare'"
            ),
        ),
        (
            lambda c: c.update(requested_scope="patient/*.write"),
            Refusal.bad_request(
                "Authorization: requested_scope patient/*.write does not allow this read request"
            ),
        ),
        (
            lambda c: c["requesting_device"].update(resourceType="Patient"),
            Refusal.invalid_resource(
                "Authorization: requesting_device must be a Device, got resourceType 'Patient'"
            ),
        ),
        (
            lambda c: c["requesting_practitioner"].update(identifier=[]),
            Refusal.invalid_resource(
                "Authorization: requesting_practitioner needs an identifier of system "
                "https://fhir.nhs.uk/Id/sds-user-id (UNK allowed)"
            ),
        ),
        (
            lambda c: c["requesting_organization"].pop("name"),
            Refusal.invalid_resource(
                "Authorization: requesting_organization.name must be a non-empty string"
            ),
        ),
    ],
)
async def test_the_ssp_checks_the_audit_claims_as_the_provider_test_pack_does(
    harness_factory: Any, tmp_path: Path, change: Any, refusal: Refusal
) -> None:
    h = await harness_factory(ROLES, audit_dir=tmp_path)
    response, body = await _call(
        h, "GET", "/gpconnect/A80002/metadata", METADATA, sender=TIE_EPR, jwt=_token(change)
    )
    assert response.status == refusal.status, body
    _exactly(body, refusal)
    assert await _entries(h) == []


async def test_lenient_timing_takes_a_shorter_lifetime_and_nothing_else(
    harness_factory: Any, tmp_path: Path
) -> None:
    shorter = _token(lambda c: c.update(exp=c["iat"] + 200))
    strict = await harness_factory(ROLES, audit_dir=tmp_path / "strict")
    response, body = await _call(
        strict, "GET", "/gpconnect/A80002/metadata", METADATA, sender=TIE_EPR, jwt=shorter
    )
    assert response.status == 400, body
    assert _issue(body)["diagnostics"].endswith("got exp - iat = 200")

    h = await harness_factory(ROLES, audit_dir=tmp_path / "lenient", jwt_timing="lenient")
    cases = [
        (shorter, 200, None),
        (_token(lambda c: c.update(exp=c["iat"] + 301)), 400, "by at most 300s"),
        (_token(lambda c: c.update(sub="someone-else")), 400, "sub must equal"),
    ]
    for jwt, status, diagnostic in cases:
        response, body = await _call(
            h, "GET", "/gpconnect/A80002/metadata", METADATA, sender=TIE_EPR, jwt=jwt
        )
        assert response.status == status, body
        if diagnostic is not None:
            assert diagnostic in _issue(body)["diagnostics"]
    assert [e["consumer_asid"] for e in await _entries(h)] == [TIE_EPR]
