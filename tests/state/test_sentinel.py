"""A state store that fails over: Redis Sentinel in front of a master and its replica, all
real redis-server processes; the store follows the master the sentinels name."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from mhs.settings import Settings, redact_url
from mhs.state import StateError, create_state_store
from mhs.state.sentinel import parse_sentinel_url
from tests.broker.support import eventually
from tests.ops.conftest import free_port

pytestmark = pytest.mark.redis
SERVICE = "mhs-test"


@dataclass
class Servers:
    master: asyncio.subprocess.Process
    replica: asyncio.subprocess.Process
    ports: dict[str, int]

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.ports['sentinel']}/{SERVICE}/0"

    async def master_port(self) -> int:
        sentinel = aioredis.Redis(port=self.ports["sentinel"])
        try:
            address: Any = await sentinel.sentinel_get_master_addr_by_name(SERVICE)
            return int(address[1])
        finally:
            await sentinel.aclose()


async def _redis(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "redis-server", *args, stdout=asyncio.subprocess.DEVNULL
    )


async def _replicated(servers: Servers) -> bool:
    sentinel = aioredis.Redis(port=servers.ports["sentinel"])
    try:
        return bool(await sentinel.sentinel_slaves(SERVICE))
    except (OSError, aioredis.RedisError):
        return False
    finally:
        await sentinel.aclose()


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    ports = {name: free_port() for name in ("master", "replica", "sentinel")}
    plain = ("--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--dir", str(tmp_path))
    master = await _redis("--port", str(ports["master"]), *plain)
    replica = await _redis(
        "--port", str(ports["replica"]), "--replicaof", "127.0.0.1", str(ports["master"]), *plain
    )
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {ports['sentinel']}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {ports['master']} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} 500\n"
        f"sentinel failover-timeout {SERVICE} 5000\n"
    )
    sentinel = await _redis(str(config), "--sentinel")
    processes = (master, replica, sentinel)
    named = Servers(master, replica, ports)
    try:
        await eventually(lambda: _replicated(named), within_s=20)
        yield named
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def test_the_store_works_through_the_sentinels(servers: Servers, unique: str) -> None:
    store = create_state_store(servers.url, prefix=f"test-{unique}")
    await store.start()
    try:
        await store.put("greeting", b"hello", ttl_s=30)
        assert await store.get("greeting") == b"hello"
        claim = await store.claim("message", owner="a", ttl_s=30)
        assert claim.won
    finally:
        await store.stop()


async def test_the_store_follows_the_master_through_a_failover(
    servers: Servers, unique: str
) -> None:
    store = create_state_store(servers.url, prefix=f"test-{unique}")
    await store.start()
    try:
        await store.put("before", b"kept", ttl_s=60)
        master = aioredis.Redis(port=servers.ports["master"])
        # The replica has it too.
        assert await master.execute_command("WAIT", 1, 5000) == 1  # type: ignore[no-untyped-call]
        await master.aclose()
        servers.master.send_signal(signal.SIGKILL)

        async def answers() -> bool:
            try:
                await store.put("after", b"written", ttl_s=60)
            except StateError:
                return False
            return True

        await eventually(answers, within_s=30)
        assert await servers.master_port() == servers.ports["replica"]
        assert await store.get("before") == b"kept"
        assert await store.get("after") == b"written"
        await eventually(lambda: _true(store.available), within_s=10)
    finally:
        await store.stop()


async def _true(value: bool) -> bool:
    return value


def test_a_sentinel_url_names_sentinels_service_db_and_passwords() -> None:
    named = parse_sentinel_url(
        "redis+sentinel://app:s3cret@10.0.0.1:26380,10.0.0.2/mymaster/2?sentinel_password=x"
    )
    assert named.sentinels == (("10.0.0.1", 26380), ("10.0.0.2", 26379))
    assert (named.service, named.db) == ("mymaster", 2)
    assert (named.username, named.password, named.sentinel_password) == ("app", "s3cret", "x")
    assert (
        redact_url(
            "redis+sentinel://app:s3cret@10.0.0.1:26380,10.0.0.2/mymaster/2?sentinel_password=x"
        )
        == "redis+sentinel://app:***@10.0.0.1:26380,10.0.0.2/mymaster/2?sentinel_password=***"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://h1:26379", "path is /<service>[/<db>]"),
        ("redis+sentinel://h1:x/mymaster", "'h1:x' is not a sentinel host:port"),
        ("redis+sentinel:///mymaster", "names at least one sentinel"),
        ("rediss+sentinel://h1/mymaster", "must start with redis://"),
    ],
)
def test_a_bad_sentinel_url_is_refused_saying_why(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        Settings(state_url=url)
