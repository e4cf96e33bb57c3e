"""The Redis state store (redis.asyncio): shared by every replica, surviving their restarts.

Each operation is one Lua script, so it is atomic on the server; each is also safe to run
twice (the client retries a command whose connection failed, and the first run may have
happened), except ``append``, which may then add its items twice. Claims are hashes
``{state, owner, value}``, values are strings and lists are lists; every key carries a TTL.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import struct
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from mhs.settings import redact_url
from mhs.state.base import (
    START_TIMEOUT_S,
    Claim,
    Settlement,
    StateError,
    StateStore,
    ttl_ms,
)
from mhs.state.sentinel import SCHEME as SENTINEL_SCHEME
from mhs.state.sentinel import parse_sentinel_url
from mhs.tasks import stop_task

# KEYS[2], when given, is read in the same step (Claim.read): false (nil) if absent.
_CLAIM = """
local read = false
if #KEYS > 1 then
  read = redis.call('GET', KEYS[2])
end
local record = redis.call('HMGET', KEYS[1], 'state', 'owner', 'value')
if not record[1] then
  redis.call('HSET', KEYS[1], 'state', 'pending', 'owner', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, 'pending', '', read}
end
if record[1] == 'pending' and record[2] == ARGV[1] then
  return {1, 'pending', '', read}
end
return {0, record[1], record[3] or '', read}
"""
# One settlement per key: ARGV holds its owner, TTL (ms) and value, three per key.
_SETTLE = """
local settled = {}
for index = 1, #KEYS do
  local key, owner = KEYS[index], ARGV[3 * index - 2]
  local held = redis.call('HGET', key, 'owner')
  if held and held ~= owner then
    settled[index] = 0
  else
    redis.call('HSET', key, 'state', 'done', 'owner', owner, 'value', ARGV[3 * index])
    redis.call('PEXPIRE', key, ARGV[3 * index - 1])
    settled[index] = 1
  end
end
return settled
"""
_RELEASE = """
local record = redis.call('HMGET', KEYS[1], 'state', 'owner')
if record[1] == 'pending' and record[2] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
# ARGV: TTL (ms), cap, and the whole batch as one binary string: per list its key, its item
# count and its items, each string after its 4-byte length. One argument however big the
# batch: the client encodes each argument of a command in Python, which would cost more
# than everything else the batch takes. The keys are in the batch, not KEYS: standalone
# Redis, not Redis Cluster.
_APPEND = """
local ttl, cap, batch = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local at, size, lists = 1, #batch, 0
local function text()
  local length
  length, at = struct.unpack('>I4', batch, at)
  local value = string.sub(batch, at, at + length - 1)
  at = at + length
  return value
end
while at <= size do
  local key = text()
  local count
  count, at = struct.unpack('>I4', batch, at)
  local room = cap - redis.call('LLEN', key)
  local items = {}
  for index = 1, count do
    local item = text()
    if index <= room then
      items[index] = item
    end
  end
  for first = 1, #items, 1000 do
    redis.call('RPUSH', key, unpack(items, first, math.min(first + 999, #items)))
  end
  redis.call('PEXPIRE', key, ttl)
  lists = lists + 1
end
return lists
"""
_ERRORS = (RedisError, OSError, TimeoutError)
# Items per script call, so that one call never holds Redis for long.
_APPEND_ITEMS_PER_CALL = 2000
_SETTLEMENTS_PER_CALL = 500
# Connections per store. redis-py takes a connection per command in flight and fails a
# command beyond its pool's limit (100 by default) with MaxConnectionsError, so commands
# beyond this many wait for a turn instead: a busy inbound MHS queues, it does not refuse.
CONNECTIONS = 64
_LENGTH = struct.Struct(">I")
_T = TypeVar("_T")


def _client(url: str, timeout_s: float) -> tuple[aioredis.Redis, list[aioredis.Redis]]:
    """The client for ``url``, and for a sentinel URL the sentinels' own clients too."""
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        "client_name": "mhs",
        # Room beyond the commands' turns for the health ping, which takes none.
        "max_connections": CONNECTIONS + 2,
    }
    if not url.startswith(f"{SENTINEL_SCHEME}://"):
        return aioredis.Redis.from_url(url, **options), []
    named = parse_sentinel_url(url)
    sentinel = Sentinel(
        named.sentinels,
        sentinel_kwargs={
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "password": named.sentinel_password,
        },
    )
    client = sentinel.master_for(
        named.service, db=named.db, username=named.username, password=named.password, **options
    )
    return client, list(sentinel.sentinels)


class RedisStateStore(StateStore):
    """Claims as Redis hashes with TTLs; ``available`` follows a ping every ``ping_interval_s``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout_s: float = 2.0,
        start_timeout_s: float = START_TIMEOUT_S,
        ping_interval_s: float = 1.0,
    ) -> None:
        super().__init__(prefix)
        self._where = redact_url(url)
        self._client, self._sentinels = _client(url, timeout_s)
        self._claim = self._client.register_script(_CLAIM)
        self._settle = self._client.register_script(_SETTLE)
        self._release = self._client.register_script(_RELEASE)
        self._append = self._client.register_script(_APPEND)
        self._start_timeout = start_timeout_s
        self._ping_interval = ping_interval_s
        self._available = False
        self._stopping = False
        self._monitor: asyncio.Task[None] | None = None
        self._turns = asyncio.Semaphore(CONNECTIONS)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        while True:
            try:
                await self._client.ping()
            except (AuthenticationError, ResponseError) as error:
                # A wrong password does not come right by waiting.
                raise StateError(
                    f"Redis at {self._where} refused us ({error}): check the user and password in "
                    "MHS_STATE_URL"
                ) from None
            except _ERRORS as error:
                if loop.time() >= deadline:
                    raise StateError(
                        f"cannot reach Redis at {self._where} within {self._start_timeout:g} s "
                        f"({error}): start it, or set MHS_STATE_URL to one that runs; unset, "
                        "the in-process store is used"
                    ) from None
                await asyncio.sleep(0.2)
            else:
                break
        self._available = True
        self._stopping = False
        self._monitor = loop.create_task(self._watch())

    async def stop(self) -> None:
        self._stopping = True
        monitor, self._monitor = self._monitor, None
        await stop_task(monitor, within_s=self._start_timeout)
        self._available = False
        await self._client.aclose()
        for sentinel in self._sentinels:
            await sentinel.aclose()

    @property
    def available(self) -> bool:
        return self._available

    async def claim(self, name: str, *, owner: str, ttl_s: float, read: str | None = None) -> Claim:
        keys = [self.key(name)] if read is None else [self.key(name), self.key(read)]
        won, state, value, found = await self._call(
            self._claim(keys=keys, args=[owner, ttl_ms(ttl_s)])
        )
        return Claim(
            won=bool(won),
            state="done" if state == b"done" else "pending",
            value=bytes(value),
            # Lua's false is nil over RESP2 and False over RESP3 (?protocol=3).
            read=None if found is None or found is False else _bytes(found),
        )

    async def settle_many(self, settlements: Sequence[Settlement]) -> list[bool]:
        settled: list[bool] = []
        for start in range(0, len(settlements), _SETTLEMENTS_PER_CALL):
            chunk = settlements[start : start + _SETTLEMENTS_PER_CALL]
            args: list[str | int | bytes] = []
            for settlement in chunk:
                args += (settlement.owner, ttl_ms(settlement.ttl_s), settlement.value)
            keys = [self.key(settlement.name) for settlement in chunk]
            settled += [bool(one) for one in await self._call(self._settle(keys=keys, args=args))]
        return settled

    async def release(self, name: str, *, owner: str) -> bool:
        return bool(await self._run(self._release, name, owner))

    async def remaining_s(self, name: str) -> float | None:
        try:
            left = int(await self._client.pttl(self.key(name)))
        except _ERRORS as error:
            raise self._failed(error) from error
        if left == -2:
            return None
        return math.inf if left < 0 else left / 1000

    async def put(self, name: str, value: bytes, *, ttl_s: float) -> None:
        await self._call(self._client.set(self.key(name), value, px=ttl_ms(ttl_s)))

    async def get(self, name: str) -> bytes | None:
        value = await self._call(self._client.get(self.key(name)))
        return None if value is None else _bytes(value)

    async def delete(self, name: str) -> bool:
        return bool(await self._call(self._client.delete(self.key(name))))

    async def append(self, batch: Mapping[str, Sequence[bytes]], *, ttl_s: float, cap: int) -> None:
        ttl = ttl_ms(ttl_s)
        if cap < 1:
            raise ValueError(f"cap must be at least 1, not {cap}")
        pack = _LENGTH.pack
        parts: list[bytes] = []
        items = 0
        for name, values in batch.items():
            key = self.key(name).encode()
            parts += (pack(len(key)), key, pack(len(values)))
            for value in values:
                parts += (pack(len(value)), value)
            items += len(values)
            if items >= _APPEND_ITEMS_PER_CALL:
                await self._call(self._append(args=[ttl, cap, b"".join(parts)]))
                parts, items = [], 0
        if parts:
            await self._call(self._append(args=[ttl, cap, b"".join(parts)]))

    async def read_list(self, name: str) -> list[bytes]:
        items = await self._call(self._client.lrange(self.key(name), 0, -1))
        return [_bytes(item) for item in items]

    async def _run(self, script: AsyncScript, name: str, *args: str | int | bytes) -> Any:
        return await self._call(script(keys=[self.key(name)], args=args))

    async def _call(self, command: Awaitable[_T]) -> _T:
        try:
            async with self._turns:
                result = await command
        except asyncio.CancelledError:
            if inspect.iscoroutine(command):
                command.close()  # cancelled while waiting for a turn: never awaited
            raise
        except _ERRORS as error:
            raise self._failed(error) from error
        self._available = True
        return result

    def _failed(self, error: BaseException) -> StateError:
        self._available = False
        return StateError(f"the state store at {self._where} did not answer: {error!r}")

    async def _watch(self) -> None:
        # redis-py can turn a cancellation that lands inside a command into a
        # ConnectionError, which this loop survives: the flag ends it all the same.
        while not self._stopping:
            await asyncio.sleep(self._ping_interval)
            try:
                await self._client.ping()
            except _ERRORS:
                self._available = False
            else:
                self._available = True


def _bytes(value: bytes | str) -> bytes:
    # The client is made without decode_responses, so replies are bytes already.
    return value.encode() if isinstance(value, str) else value
