"""Role processes as containers run them: ``python -m mhs serve ROLE`` with MHS_* settings."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp


class ProcessError(Exception):
    """A role process did not start, or did not stop, as it should."""


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's choice for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RoleProcess:
    """One ``mhs serve`` process: started, checked ready, killed, stopped, started again.

    Its output (the roles' JSON logs) goes to ``log_path``, appended across restarts.
    """

    def __init__(
        self,
        name: str,
        roles: Sequence[str],
        *,
        env: Mapping[str, str],
        health_port: int,
        log_path: Path,
    ) -> None:
        self.name = name
        self.roles = tuple(roles)
        self.env = dict(env)
        self.health_port = health_port
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/readyz"

    async def start(self, *, ready_within_s: float = 60.0) -> None:
        """Start the process and wait until it answers ready."""
        if self.running:
            raise ProcessError(f"{self.name} is already running")
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mhs",
                "serve",
                *self.roles,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
            )
        self.starts += 1
        await self.wait_ready(within_s=ready_within_s)

    async def wait_ready(self, *, within_s: float = 60.0) -> None:
        deadline = time.monotonic() + within_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if not self.running:
                    raise ProcessError(
                        f"{self.name} exited with {self.returncode} while starting; "
                        f"see {self.log_path}"
                    )
                if await self.ready(session):
                    return
                await asyncio.sleep(0.1)
        raise ProcessError(f"{self.name} was not ready within {within_s}s; see {self.log_path}")

    async def ready(self, session: aiohttp.ClientSession) -> bool:
        """Whether the process answers ready now."""
        try:
            async with session.get(self.ready_url) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    async def kill(self) -> None:
        """SIGKILL: no shutdown at all, as a crash."""
        if self.process is not None and self.running:
            self.process.kill()
            await self.process.wait()

    async def stop(self, *, within_s: float = 30.0) -> int:
        """SIGTERM and wait for a graceful exit; SIGKILL (and ProcessError) if it hangs."""
        process = self.process
        if process is None:
            return 0
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(within_s):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
                raise ProcessError(f"{self.name} did not stop within {within_s}s") from None
        return process.returncode if process.returncode is not None else 0

    async def close(self) -> None:
        """Stop if running, whatever it takes (clean-up)."""
        with contextlib.suppress(ProcessError):
            await self.stop(within_s=20)
