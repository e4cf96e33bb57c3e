"""The chaos run's doomed traffic: messages the always-on proxy faults of the proxy phases
can never get through, and what each of them is expected to end as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mhs.chaos.cluster import EXHAUSTING, EXPIRING
from mhs.directory import Directory, Party
from mhs.simulate.plan import Planned


@dataclass
class Doomed:
    """Traffic the always-on proxy faults of the proxy phases can never get through."""

    expiring_to: Party
    exhausting_to: Party
    rules: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def pick(cls, directory: Directory) -> Doomed:
        hosted = [p for p in directory.parties if p.hosted]
        expiring, exhausting = hosted[4], hosted[5]
        return cls(
            expiring,
            exhausting,
            [
                {
                    "kind": "http-status",
                    "status": 503,
                    "to_asid": expiring.asid,
                    "interaction_id": EXPIRING,
                },
                {
                    "kind": "soap-fault",
                    "code": "206",
                    "to_asid": exhausting.asid,
                    "interaction_id": EXHAUSTING,
                },
            ],
        )

    def expect(self, planned: Planned, *, active: bool) -> str:
        if planned.expect == "reject":
            return "rejected"
        if not active:
            return "delivered"
        to, interaction = planned.recipient.asid, planned.interaction_id
        if (to, interaction) == (self.expiring_to.asid, EXPIRING):
            return "expired"
        if (to, interaction) == (self.exhausting_to.asid, EXHAUSTING):
            return "dead-lettered"
        return "delivered"
