"""Shared fixtures: the real RabbitMQ and Redis, unique names, and the wire samples folder."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.rabbitmq import delete_queues, suite_queues

DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
# GP Connect providers started by any test (or by a `mhs serve` a test runs) keep their
# audit trails here, not in the user's state folder; removed when the session ends.
if "MHS_AUDIT_DIR" not in os.environ:
    _AUDIT_DIR = tempfile.TemporaryDirectory(prefix="mhs-test-audit-", ignore_cleanup_errors=True)
    os.environ["MHS_AUDIT_DIR"] = _AUDIT_DIR.name

_queues_before: set[str] = set()


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("MHS_TEST_SWEEP") == "1":
        _queues_before.update(suite_queues())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With MHS_TEST_SWEEP=1 (.ci/run sets it), delete the queues this session left (a test
    that failed half-way, reply queues not yet expired), so that runs in a row do not slow
    RabbitMQ down. Off by default: it would take the queues of another session running on
    the same broker at the same time."""
    if os.environ.get("MHS_TEST_SWEEP") != "1":
        return
    url = os.environ.get("MHS_TEST_BROKER_URL", DEFAULT_BROKER_URL)
    left = suite_queues() - _queues_before
    if left and _broker_reachable(url):
        asyncio.run(delete_queues(url, left))


def _broker_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The real broker's URL. Fails (never skips) when MHS_REQUIRE_BROKER=1 and it is down."""
    url = os.environ.get("MHS_TEST_BROKER_URL", DEFAULT_BROKER_URL)
    if not _broker_reachable(url):
        message = f"RabbitMQ is not reachable at {url}"
        if os.environ.get("MHS_REQUIRE_BROKER") == "1":
            pytest.fail(message + " (MHS_REQUIRE_BROKER=1)")
        pytest.skip(message + "; start it with `rabbitmq-server -detached`")
    return url


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis's URL. Fails (never skips) when MHS_REQUIRE_REDIS=1 and it is down."""
    url = os.environ.get("MHS_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2).close()
    except OSError:
        message = f"Redis is not reachable at {url}"
        if os.environ.get("MHS_REQUIRE_REDIS") == "1":
            pytest.fail(message + " (MHS_REQUIRE_REDIS=1)")
        pytest.skip(message + "; start it with `redis-server --daemonize yes`")
    return url


@pytest.fixture
def unique() -> str:
    """A short unique token for queue names, so tests never share broker state."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The NHS MHS adaptor wire samples, from MHS_SAMPLES_DIR (set by .ci/run)."""
    value = os.environ.get("MHS_SAMPLES_DIR")
    if not value:
        pytest.skip(
            "MHS_SAMPLES_DIR is not set: point it at shared/samples/nhs-mhs-adaptor "
            "to run the conformance tests against real Spine wire samples"
        )
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"MHS_SAMPLES_DIR={value} is not a folder")
    return path
