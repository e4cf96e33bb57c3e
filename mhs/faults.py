"""Faults the Spine proxy simulator can inject, chosen per sender, receiver and interaction."""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["http-status", "soap-fault", "message-error", "timeout"]


class FaultRule(BaseModel):
    """One fault: what to answer, for which traffic, how often.

    ``rate`` picks a share of matching messages (the same messages on every attempt, so a
    retry of a picked message is picked again); ``attempts`` limits the fault to the first
    N attempts of each picked message (None: every attempt, so it never gets through).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    kind: FaultKind = "http-status"
    status: int = Field(default=503, ge=400, le=599)
    code: str = Field(default="206", max_length=200)
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    attempts: int | None = Field(default=None, ge=1)
    from_asid: str | None = Field(default=None, pattern=r"^\d{12}$")
    to_asid: str | None = Field(default=None, pattern=r"^\d{12}$")
    interaction_id: str | None = None

    def matches(self, from_asid: str, to_asid: str, interaction_id: str) -> bool:
        return (
            (self.from_asid is None or self.from_asid == from_asid)
            and (self.to_asid is None or self.to_asid == to_asid)
            and (self.interaction_id is None or self.interaction_id == interaction_id)
        )

    def picks(self, message_id: str) -> bool:
        if self.rate >= 1.0:
            return True
        digest = hashlib.blake2b(f"{self.id}:{message_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest) / 2**64 < self.rate


class FaultPlan:
    """The active rules, and how many times each message has been seen."""

    def __init__(self, *, remember: int = 100_000) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._remember = remember

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules.values())

    def add(self, rule: FaultRule) -> FaultRule:
        self._rules[rule.id] = rule
        return rule

    def remove(self, rule_id: str) -> bool:
        return self._rules.pop(rule_id, None) is not None

    def clear(self) -> None:
        self._rules.clear()

    def attempt(self, message_id: str) -> int:
        """Count one more attempt of ``message_id`` and return its number (1 = first)."""
        count = self._seen.pop(message_id, 0) + 1
        self._seen[message_id] = count
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return count

    def decide(
        self, message_id: str, attempt: int, from_asid: str, to_asid: str, interaction_id: str
    ) -> FaultRule | None:
        """The first rule that applies to this attempt, if any."""
        for rule in self._rules.values():
            if (
                rule.matches(from_asid, to_asid, interaction_id)
                and (rule.attempts is None or attempt <= rule.attempts)
                and rule.picks(message_id)
            ):
                return rule
        return None
