"""Faults the Spine proxy simulator can inject, chosen per sender, receiver and interaction.

A rule says which traffic it applies to (sender ASID, receiver ASID, interaction, a share
of messages, the first N attempts) and what it does. ``latency`` rules add a delay and let
the request go on; every other kind decides the answer, and the first such rule that
applies wins. Rules apply in the order they were added.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

FaultKind = Literal[
    "latency", "http-status", "soap-fault", "message-error", "timeout", "drop-ack", "duplicate"
]
MAX_DELAY_MS = 600_000.0
DEFAULT_MESSAGE_ERROR = "501319:Injected MessageError"

# Which optional fields mean something for each kind; any other field set is refused.
_APPLIES: dict[str, frozenset[str]] = {
    "latency": frozenset({"delay"}),
    "http-status": frozenset({"status", "delay"}),
    "soap-fault": frozenset({"code", "delay"}),
    "message-error": frozenset({"code", "delay"}),
    "timeout": frozenset({"hold_ms", "delay"}),
    "drop-ack": frozenset({"status", "then", "hold_ms", "delay"}),
    "duplicate": frozenset({"copies", "delay"}),
}
_SELECTION = frozenset({"id", "kind", "rate", "attempts", "from_asid", "to_asid", "interaction_id"})


class _Delay(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedDelay(_Delay):
    distribution: Literal["fixed"] = "fixed"
    ms: float = Field(ge=0, le=MAX_DELAY_MS)

    def sample_ms(self, _: random.Random) -> float:
        return self.ms


class UniformDelay(_Delay):
    distribution: Literal["uniform"]
    low_ms: float = Field(ge=0, le=MAX_DELAY_MS)
    high_ms: float = Field(ge=0, le=MAX_DELAY_MS)

    @model_validator(mode="after")
    def _ordered(self) -> UniformDelay:
        if self.low_ms > self.high_ms:
            raise ValueError("low_ms must not be above high_ms")
        return self

    def sample_ms(self, rng: random.Random) -> float:
        return rng.uniform(self.low_ms, self.high_ms)


class NormalDelay(_Delay):
    """Normally distributed, cut off at zero."""

    distribution: Literal["normal"]
    mean_ms: float = Field(ge=0, le=MAX_DELAY_MS)
    stddev_ms: float = Field(ge=0, le=MAX_DELAY_MS)

    def sample_ms(self, rng: random.Random) -> float:
        return rng.gauss(self.mean_ms, self.stddev_ms)


class ExponentialDelay(_Delay):
    distribution: Literal["exponential"]
    mean_ms: float = Field(gt=0, le=MAX_DELAY_MS)

    def sample_ms(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean_ms)


def _distribution(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("distribution", "fixed"))
    return str(getattr(value, "distribution", "fixed"))


def _shorthand(value: object) -> object:
    # A bare number is a fixed delay in milliseconds.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"ms": value}
    return value


Delay = Annotated[
    Annotated[FixedDelay, Tag("fixed")]
    | Annotated[UniformDelay, Tag("uniform")]
    | Annotated[NormalDelay, Tag("normal")]
    | Annotated[ExponentialDelay, Tag("exponential")],
    Discriminator(_distribution),
    BeforeValidator(_shorthand),
]


class FaultRule(BaseModel):
    """One fault: what it does, to which traffic, how often.

    ``rate`` picks a share of matching messages (the same messages on every attempt, so a
    retry of a picked message is picked again); ``attempts`` limits the fault to the first
    N attempts of each picked message (None: every attempt, so it never gets through).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        default_factory=lambda: uuid.uuid4().hex[:12], pattern=r"^[A-Za-z0-9_.-]{1,64}$"
    )
    kind: FaultKind = "http-status"
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    attempts: int | None = Field(default=None, ge=1)
    from_asid: str | None = Field(default=None, pattern=r"^\d{12}$")
    to_asid: str | None = Field(default=None, pattern=r"^\d{12}$")
    interaction_id: str | None = Field(default=None, min_length=1, max_length=100)

    status: int = Field(default=503, ge=400, le=599, description="http-status, drop-ack")
    code: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="soap-fault: error code (default 206); message-error: description",
    )
    delay: Delay | None = Field(default=None, description="wait before the effect")
    hold_ms: float | None = Field(
        default=None, gt=0, le=MAX_DELAY_MS, description="timeout: how long to hold unanswered"
    )
    then: Literal["error", "timeout"] = Field(
        default="error", description="drop-ack: answer `status`, or hold unanswered"
    )
    copies: int = Field(default=2, ge=2, le=10, description="duplicate: forwards in all")

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> FaultRule:
        allowed = _APPLIES[self.kind]
        stray = sorted(self.model_fields_set - _SELECTION - allowed)
        if stray:
            raise ValueError(
                f"{', '.join(stray)} does not apply to kind {self.kind} "
                f"(it takes {', '.join(sorted(allowed))})"
            )
        if self.kind == "latency" and self.delay is None:
            raise ValueError("kind latency needs a delay")
        return self

    @property
    def soap_code(self) -> str:
        return self.code or "206"

    @property
    def error_description(self) -> str:
        return self.code or DEFAULT_MESSAGE_ERROR

    def public(self) -> dict[str, object]:
        """The rule as JSON data, with only the fields that mean something for its kind."""
        return self.model_dump(mode="json", include=set(_SELECTION | _APPLIES[self.kind]))

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

    def applies(
        self, message_id: str, attempt: int, from_asid: str, to_asid: str, interaction_id: str
    ) -> bool:
        return (
            self.matches(from_asid, to_asid, interaction_id)
            and (self.attempts is None or attempt <= self.attempts)
            and self.picks(message_id)
        )


@dataclass(frozen=True, slots=True)
class AppliedDelay:
    rule: FaultRule
    ms: float


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What the faults make of one attempt: delays to add, then the answer (None: forward)."""

    attempt: int
    delays: tuple[AppliedDelay, ...] = ()
    answer: FaultRule | None = None

    @property
    def delay_ms(self) -> float:
        return sum(d.ms for d in self.delays)


class DuplicateRule(ValueError):
    """A rule with this id is already active."""


class FaultPlan:
    """The active rules, and how many times each message has been seen."""

    def __init__(self, *, remember: int = 100_000, seed: int | None = None) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._remember = remember
        self._rng = random.Random(seed)  # noqa: S311 - simulated latency, not a secret

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules.values())

    def add(self, rule: FaultRule) -> FaultRule:
        if rule.id in self._rules:
            raise DuplicateRule(f"a fault with id {rule.id} is already active")
        self._rules[rule.id] = rule
        return rule

    def remove(self, rule_id: str) -> bool:
        return self._rules.pop(rule_id, None) is not None

    def clear(self) -> int:
        """Remove every rule; return how many there were."""
        count = len(self._rules)
        self._rules.clear()
        return count

    def attempt(self, message_id: str) -> int:
        """Count one more attempt of ``message_id`` and return its number (1 = first)."""
        count = self._seen.pop(message_id, 0) + 1
        self._seen[message_id] = count
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return count

    def decide(
        self, message_id: str, from_asid: str, to_asid: str, interaction_id: str
    ) -> FaultDecision:
        """Count this attempt of ``message_id`` and decide what the faults do to it."""
        attempt = self.attempt(message_id)
        if not self._rules:
            return FaultDecision(attempt)
        delays: list[AppliedDelay] = []
        answer: FaultRule | None = None
        for rule in self._rules.values():
            if not rule.applies(message_id, attempt, from_asid, to_asid, interaction_id):
                continue
            if rule.kind == "latency" or answer is None:
                if rule.delay is not None:
                    delays.append(AppliedDelay(rule, self._sample(rule.delay)))
                if rule.kind != "latency":
                    answer = rule
        return FaultDecision(attempt, tuple(delays), answer)

    def _sample(self, delay: FixedDelay | UniformDelay | NormalDelay | ExponentialDelay) -> float:
        return round(min(MAX_DELAY_MS, max(0.0, delay.sample_ms(self._rng))), 3)
