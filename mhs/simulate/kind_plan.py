"""GP Connect traffic per consumer kind: who asks which provider, for which organisation,
and what the directory says must become of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mhs.directory import Directory, Party

KINDS = ("mhs", "cma", "tie", "portal")
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
SEARCH = "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1"
# An organisation no portal counts among its participants, for the refusals portals owe it.
OUTSIDER = "Z99999"
# The datacentre has many practices; a few of them as consumers show the kind well enough.
CONSUMERS_PER_KIND = 4
Expectation = Literal["accepted", "refused"]


@dataclass(frozen=True, slots=True)
class KindShot:
    """One GP Connect request: ``named`` is the JWT's requesting_organization (None: the
    outbound MHS fills in the sender's own); ``originating`` is what the provider must see."""

    kind: str
    sender: Party
    provider: Party
    interaction: str
    named: str | None
    originating: str
    expect: Expectation


def consumers(directory: Directory, kind: str) -> list[Party]:
    """The consumer systems of ``kind`` that take part: every one, but four datacentre
    practices of ``mhs``."""
    found = [
        p
        for p in directory.parties
        if p.hosted and p.kind == kind and p.accredited_for(METADATA) and p.accredited_for(SEARCH)
    ]
    return found[:CONSUMERS_PER_KIND] if kind == "mhs" else found


def _named(sender: Party) -> list[str | None]:
    """The organisations a sender asks for: its own, and for a portal's instances every
    other member and one outsider too."""
    if sender.kind != "portal":
        return [None]
    return [None, *sorted(sender.portal - {sender.ods_code}), OUTSIDER]


def plan_kinds(directory: Directory, kinds: tuple[str, ...] = KINDS) -> list[KindShot]:
    """Every chosen kind's consumers to every GP Connect provider, metadata and patient
    searches alternating."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown topology kind {unknown[0]!r}: use {', '.join(KINDS)} or all")
    providers = [p for p in directory.parties if p.gpconnect_endpoint is not None]
    shots: list[KindShot] = []
    for kind in kinds:
        for sender in consumers(directory, kind):
            for provider in providers:
                if provider.asid == sender.asid:
                    continue
                for named in _named(sender):
                    originating = named or sender.ods_code
                    allowed = sender.may_request_for(originating) and directory.has_agreement(
                        sender.ods_code, provider.ods_code
                    )
                    interaction = (METADATA, SEARCH)[len(shots) % 2]
                    expect: Expectation = "accepted" if allowed else "refused"
                    shots.append(
                        KindShot(kind, sender, provider, interaction, named, originating, expect)
                    )
    return shots
