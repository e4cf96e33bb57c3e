from __future__ import annotations

import statistics

import pytest
from pydantic import ValidationError

from mhs.spine.faults import DuplicateRule, FaultPlan, FaultRule

A, B = "918000000001", "918000000002"


def test_rule_for_the_first_attempts_only() -> None:
    plan = FaultPlan()
    plan.add(FaultRule(status=503, attempts=2))
    outcomes = [plan.decide("M1", A, B, "X") for _ in range(3)]
    assert [o.attempt for o in outcomes] == [1, 2, 3]
    assert [o.answer is not None for o in outcomes] == [True, True, False]


def test_rate_picks_the_same_messages_every_time() -> None:
    rule = FaultRule(rate=0.25)
    ids = [f"MSG-{n}" for n in range(4000)]
    picked = {m for m in ids if rule.picks(m)}
    assert 800 < len(picked) < 1200
    assert picked == {m for m in ids if rule.picks(m)}


def test_a_picked_message_is_picked_again_on_retry() -> None:
    plan = FaultPlan()
    rule = plan.add(FaultRule(rate=0.5))
    picked = next(m for m in (f"M{n}" for n in range(100)) if rule.picks(m))
    spared = next(m for m in (f"M{n}" for n in range(100)) if not rule.picks(m))
    assert all(plan.decide(picked, A, B, "X").answer is rule for _ in range(5))
    assert all(plan.decide(spared, A, B, "X").answer is None for _ in range(5))


def test_matching_on_sender_receiver_and_interaction() -> None:
    plan = FaultPlan()
    plan.add(FaultRule(from_asid=A, to_asid=B, interaction_id="RCMR_IN010000UK05"))
    assert plan.decide("M", A, B, "RCMR_IN010000UK05").answer is not None
    assert plan.decide("M", "918000000003", B, "RCMR_IN010000UK05").answer is None
    assert plan.decide("M", A, "918000000003", "RCMR_IN010000UK05").answer is None
    assert plan.decide("M", A, B, "MCCI_IN010000UK13").answer is None


def test_latency_rules_add_up_and_the_first_answering_rule_wins() -> None:
    plan = FaultPlan()
    slow = plan.add(FaultRule(kind="latency", delay={"ms": 40}))
    first = plan.add(FaultRule(kind="http-status", status=500, delay={"ms": 10}))
    plan.add(FaultRule(kind="soap-fault", code="208"))
    also_slow = plan.add(FaultRule(kind="latency", delay={"ms": 5}))
    decision = plan.decide("M", A, B, "X")
    assert decision.answer is first
    assert [(d.rule, d.ms) for d in decision.delays] == [(slow, 40), (first, 10), (also_slow, 5)]
    assert decision.delay_ms == 55


def test_no_rules_means_no_fault() -> None:
    decision = FaultPlan().decide("M", A, B, "X")
    assert decision.answer is None
    assert decision.delays == ()
    assert decision.delay_ms == 0


@pytest.mark.parametrize(
    ("delay", "mean", "spread"),
    [
        ({"distribution": "uniform", "low_ms": 10, "high_ms": 30}, 20, (10, 30)),
        ({"distribution": "normal", "mean_ms": 50, "stddev_ms": 5}, 50, (0, 100)),
        ({"distribution": "exponential", "mean_ms": 20}, 20, (0, 1000)),
    ],
)
def test_delay_distributions(
    delay: dict[str, object], mean: float, spread: tuple[int, int]
) -> None:
    plan = FaultPlan(seed=7)
    plan.add(FaultRule.model_validate({"kind": "latency", "delay": delay}))
    samples = [plan.decide(f"M{n}", A, B, "X").delay_ms for n in range(2000)]
    assert all(spread[0] <= s <= spread[1] for s in samples)
    assert abs(statistics.fmean(samples) - mean) < mean * 0.1
    assert len(set(samples)) > 100  # a distribution, not a constant


def test_a_normal_delay_is_never_negative() -> None:
    plan = FaultPlan(seed=1)
    plan.add(
        FaultRule.model_validate(
            {"kind": "latency", "delay": {"distribution": "normal", "mean_ms": 1, "stddev_ms": 50}}
        )
    )
    samples = [plan.decide(f"M{n}", A, B, "X").delay_ms for n in range(500)]
    assert min(samples) == 0
    assert max(samples) > 0


def test_remove_and_clear_restore_normal_behaviour() -> None:
    plan = FaultPlan()
    rule = plan.add(FaultRule())
    assert plan.decide("M", A, B, "c").answer is rule
    assert plan.remove(rule.id)
    assert not plan.remove(rule.id)
    assert plan.decide("M", A, B, "c").answer is None
    plan.add(FaultRule())
    plan.add(FaultRule(kind="latency", delay={"ms": 1}))
    assert plan.clear() == 2
    assert plan.rules == []
    decision = plan.decide("M", A, B, "c")
    assert decision.answer is None
    assert decision.delays == ()


def test_a_rule_id_is_unique() -> None:
    plan = FaultPlan()
    plan.add(FaultRule(id="slow-gp2gp"))
    with pytest.raises(DuplicateRule, match="slow-gp2gp"):
        plan.add(FaultRule(id="slow-gp2gp"))


def test_attempt_memory_is_bounded() -> None:
    plan = FaultPlan(remember=10)
    for n in range(50):
        plan.attempt(f"M{n}")
    assert plan.attempt("M0") == 1  # long forgotten
    assert plan.attempt("M49") == 2


def test_public_shows_only_what_the_kind_uses() -> None:
    rule = FaultRule(kind="soap-fault", code="208", from_asid=A)
    assert rule.public() == {
        "id": rule.id,
        "kind": "soap-fault",
        "rate": 1.0,
        "attempts": None,
        "from_asid": A,
        "to_asid": None,
        "interaction_id": None,
        "code": "208",
        "delay": None,
    }
    assert FaultRule.model_validate(rule.public()) == rule


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"rate": 1.5}, "less than or equal to 1"),
        ({"status": 200}, "greater than or equal to 400"),
        ({"kind": "explode"}, "Input should be 'latency'"),
        ({"from_asid": "12"}, "should match pattern"),
        ({"attempts": 0}, "greater than or equal to 1"),
        ({"x": 1}, "Extra inputs are not permitted"),
        ({"kind": "latency"}, "kind latency needs a delay"),
        ({"kind": "latency", "status": 500, "delay": {"ms": 1}}, "status does not apply"),
        ({"kind": "soap-fault", "copies": 3}, "copies does not apply to kind soap-fault"),
        ({"kind": "duplicate", "copies": 1}, "greater than or equal to 2"),
        ({"kind": "latency", "delay": {"ms": -1}}, "greater than or equal to 0"),
        (
            {"kind": "latency", "delay": {"distribution": "uniform", "low_ms": 5, "high_ms": 1}},
            "low_ms must not be above high_ms",
        ),
        ({"kind": "latency", "delay": {"distribution": "uniform", "ms": 5}}, "Field required"),
        ({"kind": "latency", "delay": {"distribution": "gamma"}}, "does not match any of"),
        ({"kind": "drop-ack", "then": "vanish"}, "Input should be 'error' or 'timeout'"),
        ({"id": "has spaces"}, "should match pattern"),
    ],
)
def test_invalid_rules_are_refused_saying_why(bad: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        FaultRule.model_validate(bad)


def test_a_bare_number_is_a_fixed_delay_in_milliseconds() -> None:
    rule = FaultRule.model_validate({"kind": "latency", "delay": 250})
    assert rule.public()["delay"] == {"distribution": "fixed", "ms": 250.0}
