from __future__ import annotations

import pytest
from pydantic import ValidationError

from mhs.faults import FaultPlan, FaultRule


def test_rule_for_the_first_attempts_only() -> None:
    plan = FaultPlan()
    plan.add(FaultRule(status=503, attempts=2))
    outcomes = []
    for _ in range(3):
        attempt = plan.attempt("M1")
        outcomes.append(plan.decide("M1", attempt, "918000000001", "918000000002", "X"))
    assert [o is not None for o in outcomes] == [True, True, False]


def test_rate_picks_the_same_messages_every_time() -> None:
    rule = FaultRule(rate=0.25)
    ids = [f"MSG-{n}" for n in range(4000)]
    picked = {m for m in ids if rule.picks(m)}
    assert 800 < len(picked) < 1200
    assert picked == {m for m in ids if rule.picks(m)}


def test_matching_on_sender_receiver_and_interaction() -> None:
    plan = FaultPlan()
    plan.add(FaultRule(from_asid="918000000001", interaction_id="RCMR_IN010000UK05"))
    assert plan.decide("M", 1, "918000000001", "918000000002", "RCMR_IN010000UK05") is not None
    assert plan.decide("M", 1, "918000000003", "918000000002", "RCMR_IN010000UK05") is None
    assert plan.decide("M", 1, "918000000001", "918000000002", "MCCI_IN010000UK13") is None


def test_remove_and_clear_restore_normal_behaviour() -> None:
    plan = FaultPlan()
    rule = plan.add(FaultRule())
    assert plan.decide("M", 1, "a", "b", "c") is rule
    assert plan.remove(rule.id)
    assert not plan.remove(rule.id)
    assert plan.decide("M", 1, "a", "b", "c") is None
    plan.add(FaultRule())
    plan.clear()
    assert plan.rules == []


def test_attempt_memory_is_bounded() -> None:
    plan = FaultPlan(remember=10)
    for n in range(50):
        plan.attempt(f"M{n}")
    assert plan.attempt("M0") == 1  # long forgotten
    assert plan.attempt("M49") == 2


@pytest.mark.parametrize(
    "bad",
    [{"rate": 1.5}, {"status": 200}, {"kind": "explode"}, {"from_asid": "12"}, {"attempts": 0}, {"x": 1}],
)
def test_invalid_rules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FaultRule.model_validate(bad)
