"""The topology file's schema: MHSs and their instances, agreements and interactions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

import isodate
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    model_validator,
)

from mhs.directory.addresses import LocalAddresses
from mhs.directory.catalogue import CATALOGUE, PATTERN_RELIABILITY
from mhs.gpconnect.interactions import GPCONNECT_INTERACTIONS

ASID_PATTERN = r"^[0-9]{12}$"
ODS_PATTERN = r"^[A-Z0-9]{3,8}$"
PARTY_KEY_PATTERN = r"^[A-Z0-9]{3,8}-[0-9]{6,7}$"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
FQDN_PATTERN = rf"^{_LABEL}(\.{_LABEL})*$"
# A base URL without a trailing slash: service roots are this plus /<ODS>/STU3/1/<segment>.
BASE_URL_PATTERN = r"^https?://[^/?#\s]+(/[^?#\s]*[^/?#\s])?$"

Pattern = Literal["sync", "async-express", "async-reliable", "forward-reliable", "forward-express"]
AlwaysNever = Literal["always", "never"]
SyncReplyMode = Literal["MSHSignalsOnly", "None"]
# GP Connect's consumer topologies (docs/topologies.md): a supplier datacentre's MHS, a
# combined MHS and accredited system, a Trust Integration Engine, a shared care record portal.
Kind = Literal["mhs", "cma", "tie", "portal"]
# host: the hosting organisation's one ASID sends for every participant (the older rule);
# per-organisation: each participant has its own ASID and sends for itself only.
AsidRule = Literal["host", "per-organisation"]


def _iso_duration(value: object) -> object:
    # SDS writes reliability timings as ISO-8601 durations; refuse other spellings so a
    # typo such as "60" (seconds? minutes?) fails at start instead of meaning something else.
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"P(?!$)(\d+D)?(T(?=\d)[\d.HMS]+)?", value):
        raise ValueError(f"{value!r} is not an ISO-8601 duration such as PT1M or PT0.5S")
    return value


IsoDuration = Annotated[
    timedelta,
    BeforeValidator(_iso_duration),
    PlainSerializer(isodate.duration_isoformat, return_type=str),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reliability(_Strict):
    """SDS reliability attributes (nhsMHSRetries, nhsMHSRetryInterval, ...)."""

    retries: int = Field(ge=0, le=100)
    retry_interval: IsoDuration
    persist_duration: IsoDuration
    ack_requested: AlwaysNever
    duplicate_elimination: AlwaysNever
    sync_reply_mode: SyncReplyMode


class Interaction(_Strict):
    """One entry of the interaction catalogue."""

    service: str = Field(pattern=r"^urn:nhs:names:services:[a-z0-9-]+$")
    pattern: Pattern
    sync_async: bool = False
    description: str = ""
    reliability: Reliability
    reply: str | None = Field(
        default=None,
        description="the interaction Spine answers with when Spine itself receives this one",
    )

    @model_validator(mode="before")
    @classmethod
    def _pattern_reliability(cls, data: Any) -> Any:
        # Reliability may be left out: the pattern's defaults apply.
        if isinstance(data, dict) and "reliability" not in data:
            return {**data, "reliability": PATTERN_RELIABILITY.get(data.get("pattern", ""), {})}
        return data


class Instance(_Strict):
    """An accredited system: one ASID at one organisation."""

    name: str = Field(min_length=1)
    ods_code: str = Field(pattern=ODS_PATTERN)
    asid: str = Field(pattern=ASID_PATTERN)
    party_key: str | None = Field(default=None, pattern=PARTY_KEY_PATTERN)
    cpa_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{4,40}$")
    credential: SecretStr | None = Field(default=None, min_length=16)
    interactions: tuple[str, ...]


def _url_template(value: object, pattern: str, what: str) -> object:
    # Checked as it will be used: filled with the default addresses.
    if not isinstance(value, str):
        return value
    filled = LocalAddresses().fill(value)
    if not re.match(pattern, filled):
        raise ValueError(f"{value!r} is not {what} (http:// or https://)")
    return value


class Portal(_Strict):
    """A regional shared care record portal: who hosts it, who uses it, and its ASID rule."""

    host: str = Field(pattern=ODS_PATTERN, description="the hosting organisation's ODS code")
    asid_rule: AsidRule
    participants: tuple[Annotated[str, Field(pattern=ODS_PATTERN)], ...] = Field(min_length=1)


class Mhs(_Strict):
    """A Message Handling Server: one inbound endpoint serving its instances."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    kind: Kind = "mhs"
    hosted: bool
    endpoint: Annotated[
        str, BeforeValidator(lambda value: _url_template(value, r"^https?://\S+$", "a URL"))
    ] = Field(description="its inbound URL; may name {placeholders} (mhs.directory.addresses)")
    fqdn: str | None = Field(
        default=None,
        max_length=253,
        pattern=FQDN_PATTERN,
        description="the name on this MHS's TLS certificate (default: the endpoint's host)",
    )
    gpconnect_endpoint: Annotated[
        str | None,
        BeforeValidator(
            lambda value: _url_template(value, BASE_URL_PATTERN, "a base URL without a trailing /")
        ),
    ] = Field(
        default=None,
        description="base URL of its instances' GP Connect provider service roots; may name "
        "{placeholders}",
    )
    party_key: str | None = Field(default=None, pattern=PARTY_KEY_PATTERN)
    portal: Portal | None = None
    instances: tuple[Instance, ...]

    @model_validator(mode="after")
    def _shaped_as_its_kind(self) -> Mhs:
        problem = _kind_problem(self)
        if problem is not None:
            raise ValueError(f"kind {self.kind}: {problem}")
        return self

    @model_validator(mode="after")
    def _every_instance_has_a_party_key(self) -> Mhs:
        for index, instance in enumerate(self.instances):
            if instance.party_key is None and self.party_key is None:
                raise ValueError(
                    f"instances[{index}] ({instance.name}) has no party_key and the MHS has "
                    "no shared party_key"
                )
            if self.hosted and instance.credential is None:
                raise ValueError(
                    f"instances[{index}] ({instance.name}) is hosted here but has no credential"
                )
        return self


def _kind_problem(mhs: Mhs) -> str | None:
    count = len(mhs.instances)
    if mhs.kind != "portal" and mhs.portal is not None:
        return "only a kind: portal entry has a portal block"
    if mhs.kind == "cma" and count != 1:
        return f"a CMA is one system with one ASID: exactly one instance, found {count}"
    if mhs.kind == "tie":
        organisations = sorted({i.ods_code for i in mhs.instances})
        if count < 2:
            return f"a TIE fronts several systems: at least two instances, found {count}"
        if len(organisations) > 1:
            return f"the systems behind a TIE are one organisation's, found {organisations}"
    if mhs.kind == "portal":
        return _portal_problem(mhs)
    return None


def _portal_problem(mhs: Mhs) -> str | None:
    portal = mhs.portal
    if portal is None:
        return "a portal needs portal: {host, asid_rule, participants}"
    if portal.host in portal.participants:
        return f"the host {portal.host} is listed among its own participants"
    if len(set(portal.participants)) != len(portal.participants):
        return "a participant is listed twice"
    codes = [i.ods_code for i in mhs.instances]
    if portal.asid_rule == "host":
        if codes != [portal.host]:
            return (
                f"under asid_rule host the hosting organisation's one ASID sends for everyone: "
                f"exactly one instance, of {portal.host}, found {codes}"
            )
        return None
    expected = sorted((portal.host, *portal.participants))
    if sorted(codes) != expected:
        return (
            "under asid_rule per-organisation every organisation has its own ASID: one "
            f"instance each for {expected}, found {sorted(codes)}"
        )
    return None


class Spine(_Strict):
    """Spine itself as a party: the receiver of Spine's own services (an SCR query, say).

    The Spine proxy simulator answers for it, as Spine's MHS would, so it has no endpoint.
    """

    name: str = Field(default="Spine", min_length=1)
    ods_code: str = Field(pattern=ODS_PATTERN)
    asid: str = Field(pattern=ASID_PATTERN)
    party_key: str = Field(pattern=PARTY_KEY_PATTERN)
    cpa_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{4,40}$")
    interactions: tuple[str, ...]


class Topology(_Strict):
    """The whole topology file."""

    mhs: tuple[Mhs, ...] = Field(min_length=1)
    spine: Spine | None = None
    agreements: tuple[tuple[str, str], ...] = ()
    agreement_groups: tuple[tuple[str, ...], ...] = ()
    interactions: dict[str, Interaction] = Field(
        default_factory=dict,
        description="the built-in catalogue (interactions.yaml) with these entries added or "
        "overriding it by id",
    )

    @model_validator(mode="before")
    @classmethod
    def _over_the_catalogue(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**data, "interactions": {**CATALOGUE, **(data.get("interactions") or {})}}
        return data

    def accredited(self, listed: tuple[str, ...]) -> frozenset[str]:
        """The interactions an instance's list names: ``*`` is every one in the catalogue
        (GP Connect's are named one by one), ``!ID`` takes one away."""
        named = {i for i in listed if i != "*" and not i.startswith("!")}
        if "*" in listed:
            named |= self.interactions.keys()
        return frozenset(named - {i[1:] for i in listed if i.startswith("!")})

    @model_validator(mode="after")
    def _cross_references(self) -> Topology:
        if not any(mhs.hosted for mhs in self.mhs):
            raise ValueError("no MHS is marked hosted: true")
        ods_codes = self._unique_identities()
        for pair in self.agreements:
            for ods in pair:
                if ods not in ods_codes:
                    raise ValueError(f"agreement {list(pair)} names unknown ODS code {ods!r}")
        for group in self.agreement_groups:
            for ods in group:
                if ods not in ods_codes:
                    raise ValueError(f"agreement group names unknown ODS code {ods!r}")
        for name, interaction in self.interactions.items():
            # A sync interaction's reply is the HL7 in Spine's answer, not a message of its own.
            reply = interaction.reply
            sync = interaction.pattern == "sync"
            if reply is not None and not sync and reply not in self.interactions:
                raise ValueError(
                    f"interactions.{name}.reply: unknown interaction {interaction.reply!r}"
                )
        return self

    def _unique_identities(self) -> set[str]:
        """Check names, ASIDs, party keys and credentials are unique and interactions known;
        return every ODS code."""
        asids: dict[str, str] = {}
        party_keys: dict[str, str] = {}
        credentials: dict[str, str] = {}
        ods_codes: set[str] = set()
        names: set[str] = set()
        for mhs in self.mhs:
            if mhs.name in names:
                raise ValueError(f"MHS name {mhs.name!r} is used twice")
            names.add(mhs.name)
            if mhs.party_key is not None:
                _claim(party_keys, mhs.party_key, f"MHS {mhs.name}", "party key")
            for instance in mhs.instances:
                where = f"{mhs.name}/{instance.name}"
                _claim(asids, instance.asid, where, "ASID")
                if instance.party_key is not None:
                    _claim(party_keys, instance.party_key, where, "party key")
                if instance.credential is not None:
                    secret = instance.credential.get_secret_value()
                    if secret in credentials:
                        raise ValueError(f"{where}: credential is shared with another instance")
                    credentials[secret] = where
                ods_codes.add(instance.ods_code)
                self._known_interactions(where, instance.interactions)
            if mhs.portal is not None:
                # Participants under the host rule have no ASID of their own, but agree.
                ods_codes.update(mhs.portal.participants)
        if self.spine is not None:
            spine = self.spine
            _claim(asids, spine.asid, "spine", "ASID")
            _claim(party_keys, spine.party_key, "spine", "party key")
            if spine.ods_code in ods_codes:
                raise ValueError(f"spine: ODS code {spine.ods_code} is also a practice's")
            self._known_interactions("spine", spine.interactions)
        return ods_codes

    def _known_interactions(self, where: str, interactions: tuple[str, ...]) -> None:
        known = self.interactions.keys() | GPCONNECT_INTERACTIONS.keys() | {"*"}
        unknown = [i for i in interactions if i.removeprefix("!") not in known]
        if unknown:
            raise ValueError(f"{where}: unknown interaction {unknown[0]!r}")


def _claim(seen: dict[str, str], value: str, where: str, what: str) -> None:
    if value in seen:
        raise ValueError(f"{where}: {what} {value} is already used by {seen[value]}")
    seen[value] = where
