"""Per-instance broker users, on the real RabbitMQ: instance A can read its own queue and
cannot read, write or declare instance B's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aio_pika
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiormq.exceptions import ChannelAccessRefused

from mhs.broker import OutgoingMessage
from mhs.broker.factory import create_broker
from mhs.broker.users import ManagementApi, Rabbitmqctl, plan_users
from mhs.directory import load_topology
from mhs.settings import Settings

A = "918000000001"
B = "918000000002"


def _mhs(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mhs", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def prefix(unique: str, rabbitmq_url: str) -> Iterator[str]:
    """A queue prefix (and so user names) of this test's own; its users are removed after."""
    prefix = f"test-{unique}."
    yield prefix
    settings = Settings(queue_prefix=prefix, broker_url=rabbitmq_url)
    ctl = Rabbitmqctl()
    for user in plan_users(load_topology(), settings, (A, B)):
        ctl.delete(user)


@pytest.mark.rabbitmq
async def test_an_instance_reads_its_own_queue_and_no_other(prefix: str, rabbitmq_url: str) -> None:
    env = {"MHS_QUEUE_PREFIX": prefix, "MHS_BROKER_URL": rabbitmq_url}
    only = ["--asid", A, "--asid", B]
    applied = _mhs("broker-users", "--apply", "--via", "rabbitmqctl", "--json", *only, env=env)
    assert applied.returncode == 0, applied.stderr
    result = orjson.loads(applied.stdout)
    assert result["result"] == "applied via rabbitmqctl"
    names = {row["user"] for row in result["users"]}
    assert names == {f"{prefix}instance.{A}", f"{prefix}instance.{B}"}
    assert "password" not in applied.stdout
    directory = load_topology()
    credential = directory.credential_for(A)
    assert credential is not None
    assert credential not in applied.stdout

    settings = Settings(queue_prefix=prefix, broker_url=rabbitmq_url)
    admin = create_broker(rabbitmq_url, connection_name=f"{prefix}admin")
    await admin.start()
    own, other = settings.inbound_queue(A), settings.inbound_queue(B)
    try:
        for queue in (own, other):
            await admin.declare_queue(queue)
            await admin.publish(queue, OutgoingMessage(body=queue.encode()))
        password = quote(credential, safe="")
        host = rabbitmq_url.split("@", 1)[1]
        connection = await aio_pika.connect(
            f"amqp://{quote(prefix)}instance.{A}:{password}@{host}",
            client_properties={"connection_name": f"{prefix}instance-a"},
        )
        async with connection:
            channel = await connection.channel()
            mine = await channel.get_queue(own)
            message = await mine.get(timeout=10)
            assert message.body == own.encode()
            await message.ack()
            theirs = await (await connection.channel()).get_queue(other)
            with pytest.raises(ChannelAccessRefused, match="access to queue"):
                await theirs.get(timeout=10)
            theirs = await (await connection.channel()).get_queue(other)
            with pytest.raises(ChannelAccessRefused, match="access to queue"):
                await theirs.consume(_ignore)
            writer = await connection.channel()
            with pytest.raises(ChannelAccessRefused, match=r"amq\.default"):
                await writer.default_exchange.publish(
                    aio_pika.Message(b"forged"), routing_key=other
                )
            creator = await connection.channel()
            with pytest.raises(ChannelAccessRefused, match="access to queue"):
                await creator.declare_queue(f"{prefix}mine-now", durable=True)
        # B's message is still there for B.
        assert await admin.queue_depth(other) == 1
    finally:
        for queue in (own, other):
            await admin.delete_queue(queue)
        await admin.stop()

    removed = _mhs("broker-users", "--remove", "--via", "rabbitmqctl", "--json", *only, env=env)
    assert removed.returncode == 0, removed.stderr
    assert not {u for u in Rabbitmqctl().users() if u.startswith(prefix)}


def test_the_plan_gives_each_hosted_instance_read_on_its_queue_only() -> None:
    settings = Settings(queue_prefix="mhs.", broker_url="amqp://u:p@h:5672/tenants")
    users = plan_users(load_topology(), settings)
    # The hosted practices and the 8 other consumer systems; remote ones are not ours.
    assert len(users) == 32
    first = users[0]
    assert (first.username, first.vhost) == ("mhs.instance.918000000001", "tenants")
    assert (first.configure, first.write) == ("^$", "^$")
    assert first.read == r"^mhs\.inbound\.918000000001$"
    assert "dev-" not in repr(first)  # the password stays out of reprs


async def test_the_management_api_calls(aiohttp_server: Any) -> None:
    calls: list[tuple[str, str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        calls.append((request.method, request.raw_path, body))
        assert request.headers["Authorization"] == "Basic YWRtaW46c2VjcmV0"
        return web.Response(status=204 if request.method != "GET" else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server: TestServer = await aiohttp_server(app)
    api = ManagementApi(str(server.make_url("")), "admin", "secret")
    user = plan_users(load_topology(), Settings(broker_url="amqp://admin:secret@h/"))[0]
    assert await _in_thread(api.available)
    await _in_thread(lambda: api.put(user))
    await _in_thread(lambda: api.delete(user))
    assert [c[:2] for c in calls] == [
        ("GET", "/api/overview"),
        ("PUT", "/api/users/mhs.instance.918000000001"),
        ("PUT", "/api/permissions/%2F/mhs.instance.918000000001"),
        ("DELETE", "/api/users/mhs.instance.918000000001"),
    ]
    assert calls[1][2] == {"password": user.password, "tags": ""}
    assert calls[2][2] == {"configure": "^$", "write": "^$", "read": user.read}


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    raise AssertionError("another instance's message was delivered")


async def _in_thread(work: Any) -> Any:

    return await asyncio.to_thread(work)
