"""What a user sees when a role cannot start: one line naming the cause and the fix, and
exit code 3, never a traceback. Run as the user runs it: ``python -m mhs serve``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).parents[2]
UNAVAILABLE = 3


def serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mhs", "serve", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
        env={**os.environ, "MHS_LOG_LEVEL": "WARNING", **env},
        check=False,
    )


def _with_password(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    return urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, "", ""))


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == UNAVAILABLE, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.rabbitmq
def test_a_wrong_broker_password_fails_at_once_naming_the_setting(rabbitmq_url: str) -> None:
    wrong = _with_password(rabbitmq_url, "guest", "not-the-password")
    line = _one_line(serve("worker", "--broker", wrong))
    assert "refused the login (ACCESS_REFUSED)" in line
    assert "MHS_BROKER_URL" in line
    assert "not-the-password" not in line  # the URL is shown with its password hidden
    assert "guest:***@" in line


@pytest.mark.redis
def test_a_wrong_redis_password_fails_at_once_naming_the_setting(redis_url: str) -> None:
    wrong = _with_password(redis_url, "no-such-user", "not-the-password")
    done = serve("inbound", MHS_STATE_URL=wrong, MHS_INBOUND_PORT="0")
    line = _one_line(done)
    assert done.stdout == ""  # not a log line about it first: the one line says it all
    assert line.startswith("cannot start: Redis at redis://no-such-user:***@")
    assert "MHS_STATE_URL" in line


def test_a_busy_port_names_the_role_the_address_and_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line(serve("outbound", MHS_OUTBOUND_PORT=str(port)))
    assert line == (
        f"cannot start: outbound cannot listen on 127.0.0.1:{port} (address already in use): "
        "set MHS_OUTBOUND_PORT to a free port"
    )


def test_a_busy_port_for_the_other_mhs_names_its_setting() -> None:
    ports = {f"MHS_{role}_PORT": "0" for role in ("OUTBOUND", "SPINE_PROXY", "INBOUND", "WORKER")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line(
            serve("all", **ports, MHS_GP_PROVIDER_PORT="0", MHS_REMOTE_INBOUND_PORT=str(port))
        )
    assert line == (
        f"cannot start: inbound:remote cannot listen on 127.0.0.1:{port} (address already in "
        "use): set MHS_REMOTE_INBOUND_PORT (or MHS remote's endpoint in the topology) to a free "
        "port"
    )


def test_a_broker_that_does_not_answer_is_waited_for_and_the_wait_announced_once() -> None:
    with socket.socket() as nobody:  # a port nothing listens on
        nobody.bind(("127.0.0.1", 0))
        port = nobody.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mhs", "serve", "worker", "--broker",
         f"amqp://guest:secret@127.0.0.1:{port}/"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT,
        env={**os.environ, "MHS_LOG_LEVEL": "WARNING", "MHS_WORKER_PORT": "0"},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # blocks until the announcement (or the end)
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=30)
    assert first == f"waiting for RabbitMQ at amqp://guest:***@127.0.0.1:{port}/ (up to 30 s)...\n"
    assert "waiting for" not in rest
