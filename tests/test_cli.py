"""The mhs command, run as users and containers run it: real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from mhs.broker import Broker, BrokerError
from mhs.broker.factory import create_broker
from tests.ops.conftest import PORT_SETTINGS, free_port
from tests.rabbitmq import left_behind

MHS = [sys.executable, "-m", "mhs"]
ROOT = Path(__file__).parents[1]


def run(
    *args: str, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MHS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.rabbitmq
def test_simulate_on_rabbitmq_loses_and_duplicates_nothing(rabbitmq_url: str, unique: str) -> None:
    prefix = f"test-{unique}."
    result = run(
        "simulate",
        "--json",
        "--broker",
        rabbitmq_url,
        "--messages",
        "600",
        env={"MHS_QUEUE_PREFIX": prefix},
    )
    assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    assert summary["lost"] == 0
    assert summary["duplicates"] == 0
    assert (
        summary["accepted"] == summary["delivered"] + summary["rejected"] + summary["dead_lettered"]
    )
    assert summary["accepted"] == 600
    assert summary["instances"] >= 20
    assert summary["rejected"] > 0  # pairs without agreements were in the mix
    assert summary["retried"] > 0  # the proxy failed some first attempts
    for key in ("p50_ms", "p99_ms", "messages_per_s"):
        assert summary[key] > 0
    # Nothing of the run is left on the broker but the replicas' reply queues, which expire.
    assert left_behind(prefix) == []


def test_simulate_on_the_embedded_broker() -> None:
    result = run("simulate", "--json", "--messages", "300", "--instances", "20")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["ok"]
    assert summary["lost"] == 0
    assert summary["duplicates"] == 0
    assert summary["delivered"] > 0
    assert summary["rejected"] > 0


def test_topology_json_lists_instances_agreements_and_interactions() -> None:
    result = run("topology", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    first = data["instances"][0]
    assert {"name", "ods_code", "asid", "party_key", "credential", "interactions", "hosted"} <= set(
        first
    )
    assert sum(1 for i in data["instances"] if i["mhs"] == "datacentre") == 24
    assert ["A80001", "A80002"] in data["agreements"]
    assert ["A80001", "A80009"] not in data["agreements"]
    forward = next(i for i in data["interactions"] if i["id"] == "RCMR_IN010000UK05")
    assert forward["pattern"] == "forward-reliable"
    assert forward["reliability"]["retry_interval"] == "PT0.2S"


def test_a_bad_topology_fails_at_start_naming_the_problem(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "mhs/directory/default-topology.yaml").read_text())
    raw["mhs"][0]["instances"][4]["asid"] = "9180"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = run("serve", "all", "--topology", str(bad), timeout=30)
    assert result.returncode == 2
    assert str(bad) in result.stderr
    assert "instances[4] (Hosted practice 5).asid" in result.stderr


def test_piped_tables_are_never_truncated_or_wrapped() -> None:
    result = run("topology")  # stdout is a pipe here, not a terminal
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "datacentre (hosted)" in line]
    assert len(rows) == 24  # one line per hosted practice: nothing wrapped onto a second
    assert "918000000024" in rows[-1]
    assert "A80024-0000024" in rows[-1]
    assert "…" not in result.stdout


def test_a_bad_setting_is_reported() -> None:
    result = run("topology", env={"MHS_BROKER_URL": "http://nope"})
    assert result.returncode == 2
    assert "MHS_BROKER_URL" in result.stderr


def test_a_bad_setting_names_only_flags_that_exist() -> None:
    result = run("config", env={"MHS_OUTBOUND_PORT": "eighty", "MHS_BROKER_URL": "http://nope"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("configuration error: MHS_BROKER_URL / --broker: ")
    assert lines[1].startswith("configuration error: MHS_OUTBOUND_PORT: Input should be")


def test_a_misspelt_variable_is_warned_about_with_the_nearest_setting() -> None:
    result = run("config", env={"MHS_OUTBOUND_PRT": "9000", "MHS_SAMPLES_DIR": "/tmp"})
    assert result.returncode == 0  # a warning, not an error: the rest is valid
    assert result.stderr.strip() == (
        "warning: MHS_OUTBOUND_PRT is not a setting and is ignored: did you mean MHS_OUTBOUND_PORT?"
    )


def _wait_for_messages(url: str, queues: list[str], within_s: float = 20) -> list[int]:
    """How many messages each queue holds, once each holds one or ``within_s`` is up."""

    async def depths() -> list[int]:
        broker = create_broker(url, connection_name="mhs-test-client")
        await broker.start()
        try:
            deadline = time.monotonic() + within_s
            while True:
                found = [await _depth(broker, queue) for queue in queues]
                if all(found) or time.monotonic() > deadline:
                    return found
                await asyncio.sleep(0.2)
        finally:
            await broker.stop()

    return asyncio.run(depths())


async def _depth(broker: Broker, queue: str) -> int:
    try:
        return await broker.queue_depth(queue)
    except BrokerError:  # not declared yet
        return 0


@pytest.mark.rabbitmq
def test_serve_all_on_moved_ports_delivers_to_both_mhs_and_stops_on_sigterm(
    rabbitmq_url: str, unique: str
) -> None:
    ports = {name: free_port() for name in PORT_SETTINGS}
    # Only the ports move: the endpoints and the proxy URL follow them, no overrides.
    env = {f"MHS_{name}_PORT": str(port) for name, port in ports.items()}
    env.update(
        MHS_BROKER_URL=rabbitmq_url,
        MHS_QUEUE_PREFIX=f"test-{unique}.",
        MHS_SHUTDOWN_TIMEOUT_S="3",
    )
    shown = json.loads(run("topology", "--json", env=env).stdout)["endpoints"]
    assert shown["spine_proxy"] == f"http://127.0.0.1:{ports['SPINE_PROXY']}"
    endpoints = [(m["name"], m["endpoint"], m["gpconnect_endpoint"]) for m in shown["mhs"]]
    assert endpoints[:2] == [
        (
            "datacentre",
            f"http://127.0.0.1:{ports['INBOUND']}/reliablemessaging",
            f"http://127.0.0.1:{ports['GP_PROVIDER']}",
        ),
        ("remote", f"http://127.0.0.1:{ports['REMOTE_INBOUND']}/reliablemessaging", None),
    ]
    # The CMA, TIE and portal consumers' endpoints are written out: no port moves them.
    assert all(".consumers.invalid/" in endpoint for _, endpoint, _ in endpoints[2:])
    proc = subprocess.Popen(
        [*MHS, "serve", "all"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if run("healthcheck", "all", env=env, timeout=10).returncode == 0:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("serve all never became ready")
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['WORKER']}/readyz") as response:
            assert json.loads(response.read())["status"] == "ready"
        # One message to a hosted practice, one to the other MHS's: both arrive.
        for recipient in ("A80002", "B80001"):
            sent = run("inject", "--from", "A80001", "--to", recipient, env=env, timeout=30)
            assert sent.returncode == 0, sent.stderr
        arrived = _wait_for_messages(
            rabbitmq_url,
            [f"test-{unique}.inbound.918000000002", f"test-{unique}.inbound.928000000001"],
        )
        assert arrived == [1, 1]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        started = [
            json.loads(line)["role"]
            for line in out.splitlines()
            if line.startswith("{") and json.loads(line)["event"] == "role.started"
        ]
        # The hosted MHS's inbound and the remote MHS's.
        assert sorted(started) == [
            "gp-provider",
            "inbound",
            "inbound",
            "outbound",
            "sds",
            "spine-proxy",
            "worker",
        ]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert run("healthcheck", "outbound", env=env, timeout=10).returncode == 1
