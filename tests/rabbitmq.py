"""The real RabbitMQ seen from outside the product: rabbitmqctl, for what AMQP cannot show."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from mhs.broker.factory import create_broker

# Each outbound replica's reply queue: RabbitMQ deletes it once unused (x-expires).
REPLY_QUEUE = re.compile(r"\.replies\.[0-9a-f]{12}$")


def require_rabbitmqctl() -> None:
    """rabbitmqctl closes connections from the server side and lists queues; CI
    (MHS_REQUIRE_BROKER=1) has it."""
    if shutil.which("rabbitmqctl") is None:
        message = "rabbitmqctl is not installed here"
        if os.environ.get("MHS_REQUIRE_BROKER") == "1":
            pytest.fail(message + " (MHS_REQUIRE_BROKER=1)")
        pytest.skip(message)


def queue_names(prefix: str) -> list[str]:
    """The queues on the broker whose names start with ``prefix``."""
    require_rabbitmqctl()
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "name", "--quiet", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return sorted(name for name in listed.stdout.split() if name.startswith(prefix))


def left_behind(prefix: str) -> list[str]:
    """The queues a run in namespace ``prefix`` left, apart from reply queues that expire."""
    return [name for name in queue_names(prefix) if not REPLY_QUEUE.search(name)]


# Namespaces the suite makes: test-<token>., chaos-<run>., simulate's <prefix>sim-<run>.,
# and the bench smoke's bench-<run>.
SUITE_PREFIXES = ("test-", "chaos-", "mhs.sim-", "bench-")


def suite_queues() -> set[str]:
    """The queues on the broker in the suite's namespaces (empty if it cannot be asked)."""
    if shutil.which("rabbitmqctl") is None:
        return set()
    try:
        return {name for name in queue_names("") if name.startswith(SUITE_PREFIXES)}
    except (OSError, subprocess.SubprocessError):
        return set()


async def delete_queues(url: str, names: set[str]) -> None:
    """Delete ``names`` over one connection."""
    broker = create_broker(url, connection_name="mhs-test-sweep")
    await broker.start()
    try:
        for name in sorted(names):
            await broker.delete_queue(name)
    finally:
        await broker.stop()
