"""A short run of scripts/bench so the benchmark never rots (figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
KEYS = (
    "yardstick_mps",
    "product_mps",
    "ratio",
    "yardstick_p50_ms",
    "yardstick_p99_ms",
    "product_p50_ms",
    "product_p99_ms",
    "yardstick_one_in_flight_p50_ms",
    "product_one_in_flight_p50_ms",
    "half_rate_p99_ratio",
    "product_own_half_rate_p99_ms",
)


@pytest.mark.rabbitmq
def test_bench_runs_both_systems_and_loses_nothing(rabbitmq_url: str) -> None:
    argv = [sys.executable, str(ROOT / "scripts/bench.py"), "--json", "--broker", rabbitmq_url]
    argv += ["--messages", "200", "--warmup", "20", "--one", "20"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    for key in KEYS:
        assert figures[key] > 0, key
    assert figures["lost"] == 0
    assert figures["refused"] == 0
    assert set(figures["product_rss_mb"]) == {"outbound", "worker", "spine-proxy", "inbound"}


@pytest.mark.rabbitmq
def test_the_lever_bench_measures_a_revision_and_cleans_up(rabbitmq_url: str) -> None:
    argv = [sys.executable, str(ROOT / "scripts/bench_levers.py"), "HEAD", "--broker"]
    argv += [rabbitmq_url, "--rounds", "1", "--messages", "60", "--warmup", "10"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    head = json.loads(result.stdout)["revisions"]["HEAD"]
    assert head["roles_per_driver"] > 0
    assert len(head["each_round"]) == 1
    assert set(head["us_at_median_driver"]) == {
        "inbound",
        "spine-proxy",
        "worker",
        "outbound",
        "rabbitmq",
    }
    worktrees = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True, check=True
    )
    assert "mhs-levers-" not in worktrees.stdout  # its checkout is gone again
