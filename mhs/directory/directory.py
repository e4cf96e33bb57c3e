"""Our SDS: precomputed lookups over a validated topology."""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from urllib.parse import urlsplit

from mhs.directory.addresses import LocalAddresses
from mhs.directory.model import Interaction, Kind, Mhs, Topology

SPINE_MHS = "spine"


@dataclass(frozen=True, slots=True)
class Party:
    """One instance, resolved: its own identity plus what its MHS gives it."""

    name: str
    ods_code: str
    asid: str
    party_key: str
    cpa_id: str
    mhs: str
    hosted: bool
    endpoint: str
    interactions: frozenset[str]
    fqdn: str
    gpconnect_endpoint: str | None
    # Spine itself: the Spine proxy answers for it rather than forwarding to an endpoint.
    spine: bool = False
    kind: Kind = "mhs"
    # A portal's hosting organisation and participants (empty for the other kinds), and the
    # organisations this system may request for besides its own: a host-rule portal's ASID
    # sends for every participant; every other system only for its own organisation.
    portal: frozenset[str] = frozenset()
    acts_for: frozenset[str] = frozenset()

    def accredited_for(self, interaction_id: str) -> bool:
        return interaction_id in self.interactions

    def may_request_for(self, ods_code: str) -> bool:
        """Whether this system may send a request whose originating organisation is
        ``ods_code`` (the JWT's requesting_organization)."""
        return ods_code == self.ods_code or ods_code in self.acts_for


def _filled(topology: Topology, addresses: LocalAddresses) -> Topology:
    """The topology with its endpoint templates filled (mhs.directory.addresses)."""
    mhs = []
    for entry in topology.mhs:
        gpconnect = entry.gpconnect_endpoint
        update = {
            "endpoint": addresses.fill(entry.endpoint),
            "gpconnect_endpoint": addresses.fill(gpconnect) if gpconnect else gpconnect,
        }
        mhs.append(entry.model_copy(update=update))
    return topology.model_copy(update={"mhs": tuple(mhs)})


def _portal_members(mhs: Mhs) -> frozenset[str]:
    portal = mhs.portal
    return frozenset((portal.host, *portal.participants)) if portal else frozenset()


def _acts_for(mhs: Mhs) -> frozenset[str]:
    portal = mhs.portal
    if portal is None or portal.asid_rule != "host":
        return frozenset()
    return frozenset(portal.participants)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Directory:
    """Answers who is who: by credential, ASID, ODS code and party key."""

    def __init__(
        self,
        topology: Topology,
        *,
        source: str = "<topology>",
        addresses: LocalAddresses | None = None,
    ) -> None:
        topology = _filled(topology, addresses or LocalAddresses())
        self.topology = topology
        self.source = source
        self._by_asid: dict[str, Party] = {}
        self._by_ods: dict[str, list[Party]] = defaultdict(list)
        self._by_party_key: dict[str, list[Party]] = defaultdict(list)
        self._credentials: dict[bytes, tuple[str, Party]] = {}
        self._credential_by_asid: dict[str, str] = {}
        self._mhs: dict[str, Mhs] = {mhs.name: mhs for mhs in topology.mhs}
        for mhs in topology.mhs:
            for instance in mhs.instances:
                party_key = instance.party_key or mhs.party_key
                assert party_key is not None  # guaranteed by the model's validator
                party = Party(
                    name=instance.name,
                    ods_code=instance.ods_code,
                    asid=instance.asid,
                    party_key=party_key,
                    cpa_id=instance.cpa_id or f"S{instance.asid}",
                    mhs=mhs.name,
                    hosted=mhs.hosted,
                    endpoint=mhs.endpoint,
                    interactions=self.topology.accredited(instance.interactions),
                    fqdn=mhs.fqdn or urlsplit(mhs.endpoint).hostname or "",
                    gpconnect_endpoint=mhs.gpconnect_endpoint,
                    kind=mhs.kind,
                    portal=_portal_members(mhs),
                    acts_for=_acts_for(mhs),
                )
                self._by_asid[party.asid] = party
                self._by_ods[party.ods_code].append(party)
                self._by_party_key[party.party_key].append(party)
                if instance.credential is not None:
                    secret = instance.credential.get_secret_value()
                    self._credentials[_digest(secret)] = (secret, party)
                    self._credential_by_asid[party.asid] = secret
        self._practices = dict(self._by_asid)
        self.spine = _spine_party(topology) if topology.spine is not None else None
        if self.spine is not None:
            # Found by ASID, ODS code and party key like any system, but not one of `parties`
            # (the practices' systems): it has no queue and no inbound MHS.
            self._by_asid[self.spine.asid] = self.spine
            self._by_ods[self.spine.ods_code].append(self.spine)
            self._by_party_key[self.spine.party_key].append(self.spine)
        self._pairs: set[frozenset[str]] = {frozenset(pair) for pair in topology.agreements}
        self._groups: dict[str, set[int]] = defaultdict(set)
        for index, group in enumerate(topology.agreement_groups):
            for ods in group:
                self._groups[ods].add(index)

    @property
    def parties(self) -> Iterable[Party]:
        """Every practice's system (Spine, if in the topology, is ``spine`` instead)."""
        return self._practices.values()

    @property
    def interactions(self) -> Mapping[str, Interaction]:
        return self.topology.interactions

    def interaction(self, interaction_id: str) -> Interaction | None:
        return self.topology.interactions.get(interaction_id)

    def by_asid(self, asid: str) -> Party | None:
        return self._by_asid.get(asid)

    def by_credential(self, token: str) -> Party | None:
        """The hosted instance this credential belongs to, compared in constant time."""
        entry = self._credentials.get(_digest(token))
        if entry is None:
            return None
        secret, party = entry
        return party if hmac.compare_digest(secret.encode(), token.encode()) else None

    def credential_for(self, asid: str) -> str | None:
        """A hosted instance's credential, for tools that act as that instance."""
        return self._credential_by_asid.get(asid)

    def by_ods(self, ods_code: str) -> tuple[Party, ...]:
        return tuple(self._by_ods.get(ods_code, ()))

    def by_party_key(self, party_key: str) -> tuple[Party, ...]:
        return tuple(self._by_party_key.get(party_key, ()))

    def recipient(self, ods_code: str, interaction_id: str) -> Party | None:
        """The system at ``ods_code`` that receives ``interaction_id``.

        Prefers an accredited one; otherwise returns any system there so that Spine's
        own receiver check refuses it, as the real SSP would.
        """
        candidates = self._by_ods.get(ods_code)
        if not candidates:
            return None
        for party in candidates:
            if party.accredited_for(interaction_id):
                return party
        return candidates[0]

    def gpconnect_provider(self, ods_code: str) -> Party | None:
        """The GP Connect provider system at ``ods_code`` (one per organisation), or None."""
        for party in self._by_ods.get(ods_code, ()):
            if party.gpconnect_endpoint is not None:
                return party
        return None

    def mhs(self, name: str) -> Mhs | None:
        return self._mhs.get(name)

    @property
    def hosted_mhs(self) -> Mhs:
        return next(mhs for mhs in self.topology.mhs if mhs.hosted)

    def has_agreement(self, ods_a: str, ods_b: str) -> bool:
        """A mutual data sharing agreement; an organisation always shares with itself, and
        Spine's own services need none."""
        if ods_a == ods_b or frozenset((ods_a, ods_b)) in self._pairs:
            return True
        if self.spine is not None and self.spine.ods_code in (ods_a, ods_b):
            return True
        return bool(self._groups.get(ods_a, set()) & self._groups.get(ods_b, set()))

    def agreement_pairs(self) -> list[tuple[str, str]]:
        """Every agreeing pair of distinct ODS codes, sorted."""
        pairs = {tuple(sorted(pair)) for pair in self._pairs if len(pair) == 2}
        for group in self.topology.agreement_groups:
            pairs.update(combinations(sorted(set(group)), 2))
        return sorted((a, b) for a, b in pairs)


def _spine_party(topology: Topology) -> Party:
    spine = topology.spine
    assert spine is not None
    return Party(
        name=spine.name,
        ods_code=spine.ods_code,
        asid=spine.asid,
        party_key=spine.party_key,
        cpa_id=spine.cpa_id or f"S{spine.asid}",
        mhs=SPINE_MHS,
        hosted=False,
        endpoint="",
        interactions=topology.accredited(spine.interactions),
        fqdn="",
        gpconnect_endpoint=None,
        spine=True,
    )
