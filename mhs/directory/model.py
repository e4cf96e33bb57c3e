"""The topology file's schema: MHSs and their instances, agreements and interactions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

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

ASID_PATTERN = r"^\d{12}$"
ODS_PATTERN = r"^[A-Z0-9]{3,8}$"
PARTY_KEY_PATTERN = r"^[A-Z0-9]{3,8}-\d{6,7}$"

Pattern = Literal["async-express", "async-reliable", "forward-reliable"]
AlwaysNever = Literal["always", "never"]
SyncReplyMode = Literal["MSHSignalsOnly", "None"]


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
    PlainSerializer(lambda d: isodate.duration_isoformat(d), return_type=str),
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

    service: str = Field(pattern=r"^urn:nhs:names:services:[a-z0-9]+$")
    pattern: Pattern
    sync_async: bool = False
    description: str = ""
    reliability: Reliability


class Instance(_Strict):
    """An accredited system: one ASID at one organisation."""

    name: str = Field(min_length=1)
    ods_code: str = Field(pattern=ODS_PATTERN)
    asid: str = Field(pattern=ASID_PATTERN)
    party_key: str | None = Field(default=None, pattern=PARTY_KEY_PATTERN)
    cpa_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{4,40}$")
    credential: SecretStr | None = Field(default=None, min_length=16)
    interactions: tuple[str, ...]


class Mhs(_Strict):
    """A Message Handling Server: one inbound endpoint serving its instances."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    hosted: bool
    endpoint: str = Field(pattern=r"^https?://")
    party_key: str | None = Field(default=None, pattern=PARTY_KEY_PATTERN)
    instances: tuple[Instance, ...]

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


class Topology(_Strict):
    """The whole topology file."""

    mhs: tuple[Mhs, ...] = Field(min_length=1)
    agreements: tuple[tuple[str, str], ...] = ()
    agreement_groups: tuple[tuple[str, ...], ...] = ()
    interactions: dict[str, Interaction] = Field(min_length=1)

    @model_validator(mode="after")
    def _cross_references(self) -> Topology:
        asids: dict[str, str] = {}
        party_keys: dict[str, str] = {}
        credentials: set[str] = set()
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
                    credentials.add(secret)
                ods_codes.add(instance.ods_code)
                for interaction in instance.interactions:
                    if interaction not in self.interactions:
                        raise ValueError(f"{where}: unknown interaction {interaction!r}")
        if not any(mhs.hosted for mhs in self.mhs):
            raise ValueError("no MHS is marked hosted: true")
        for pair in self.agreements:
            for ods in pair:
                if ods not in ods_codes:
                    raise ValueError(f"agreement {list(pair)} names unknown ODS code {ods!r}")
        for group in self.agreement_groups:
            for ods in group:
                if ods not in ods_codes:
                    raise ValueError(f"agreement group names unknown ODS code {ods!r}")
        return self


def _claim(seen: dict[str, str], value: str, where: str, what: str) -> None:
    if value in seen:
        raise ValueError(f"{where}: {what} {value} is already used by {seen[value]}")
    seen[value] = where
