"""RabbitMQ's own view of connections, and closing them from the server side.

Only connections whose client-provided name starts with a given prefix are touched: the
broker is shared, and other processes' connections are not ours to close.
"""

from __future__ import annotations

import asyncio
import re
import shutil

_NAME = re.compile(r'\{"connection_name","([^"]*)"\}')


class RabbitCtlError(Exception):
    """rabbitmqctl is missing or could not manage the broker."""


async def rabbitmqctl(*args: str) -> str:
    if shutil.which("rabbitmqctl") is None:
        raise RabbitCtlError("rabbitmqctl is not installed here")
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RabbitCtlError(f"rabbitmqctl {' '.join(args)}: {err.decode().strip()}")
    return out.decode()


async def connections(prefix: str) -> dict[str, str]:
    """Connection pid -> client-provided name, for names starting with ``prefix``."""
    listing = await rabbitmqctl("list_connections", "pid", "client_properties")
    found: dict[str, str] = {}
    for line in listing.splitlines():
        pid, _, properties = line.partition("\t")
        match = _NAME.search(properties)
        if match and match.group(1).startswith(prefix):
            found[pid] = match.group(1)
    return found


async def close_connections(prefix: str, reason: str = "closed by chaos") -> list[str]:
    """Close, from the server side, every connection named ``prefix``*; their names."""
    found = await connections(prefix)
    closed = []
    for pid, name in found.items():
        try:
            await rabbitmqctl("close_connection", pid, reason)
        except RabbitCtlError:
            continue  # it went away by itself meanwhile
        closed.append(name)
    return closed
