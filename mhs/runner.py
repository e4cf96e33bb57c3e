"""Running role applications: one or several per process, with bounded, ordered shutdown.

``serve all`` and ``simulate`` use this to run the same role applications that run in
separate containers; the roles still talk to each other only over HTTP and the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from mhs.broker import Broker
from mhs.broker.factory import create_broker
from mhs.directory import Directory
from mhs.roles.gp_provider import create_gp_provider_app
from mhs.roles.inbound import create_inbound_app
from mhs.roles.outbound import create_outbound_app
from mhs.roles.sds import create_sds_app
from mhs.roles.spine_proxy import create_spine_proxy_app
from mhs.roles.worker import create_worker_app
from mhs.settings import Settings
from mhs.tls import server_context

RoleName = Literal["outbound", "worker", "spine-proxy", "inbound", "gp-provider", "sds"]
# The SDS simulator starts once the roles it names are listening (their URLs are known).
ROLES: tuple[RoleName, ...] = (
    "inbound",
    "gp-provider",
    "spine-proxy",
    "sds",
    "worker",
    "outbound",
)


@dataclass
class Running:
    """One started role application and where it listens."""

    role: str
    runner: web.AppRunner
    url: str


@dataclass
class Cluster:
    """Roles started in dependency order (inbound, proxy, workers, outbound).

    With ``ephemeral_ports`` every role listens on a free port and the URLs are wired
    through settings (endpoint overrides, proxy URL), as a test or simulation needs.
    """

    settings: Settings
    directory: Directory
    ephemeral_ports: bool = False
    running: list[Running] = field(default_factory=list)
    shared_broker: Broker | None = None

    @property
    def urls(self) -> dict[str, str]:
        return {r.role: r.url for r in self.running}

    async def start(
        self,
        roles: Sequence[RoleName] = ROLES,
        *,
        workers: int = 1,
        extra_inbound: Sequence[str] = (),
    ) -> None:
        if self.settings.broker_url is None:
            # The embedded broker lives in this process, so the roles share its instance.
            self.shared_broker = create_broker(None, connection_name="mhs")
            await self.shared_broker.start()
        settings = self.settings
        try:
            if "inbound" in roles:
                settings = await self._start_inbound(settings, extra_inbound)
            served_mhs = self.directory.mhs(settings.local_mhs or self.directory.hosted_mhs.name)
            # A topology without GP Connect endpoints has no provider to run.
            if "gp-provider" in roles and served_mhs is not None and served_mhs.gpconnect_endpoint:
                url = await self._run(
                    "gp-provider",
                    create_gp_provider_app(settings, self.directory),
                    settings.gp_provider_port,
                )
                if self.ephemeral_ports:
                    overrides = {**settings.gpconnect_overrides, served_mhs.name: url}
                    settings = settings.model_copy(update={"gpconnect_overrides": overrides})
            if "spine-proxy" in roles:
                url = await self._run(
                    "spine-proxy",
                    create_spine_proxy_app(settings, self.directory),
                    settings.spine_proxy_port,
                )
                if self.ephemeral_ports:
                    settings = settings.model_copy(update={"spine_proxy_url": url})
            if "sds" in roles:
                await self._run("sds", create_sds_app(settings, self.directory), settings.sds_port)
            if "worker" in roles:
                for index in range(workers):
                    app = create_worker_app(settings, self.directory, broker=self.shared_broker)
                    port = settings.worker_port if index == 0 else 0
                    await self._run("worker" if index == 0 else f"worker:{index}", app, port)
            if "outbound" in roles:
                app = create_outbound_app(settings, self.directory, broker=self.shared_broker)
                await self._run("outbound", app, settings.outbound_port)
        except BaseException:
            await self.stop()
            raise
        self.settings = settings

    async def _start_inbound(self, settings: Settings, extra: Sequence[str]) -> Settings:
        """The inbound MHS this deployment serves, then ``extra`` ones: each on its own
        endpoint's port (ephemeral ports: any port, and the endpoint follows it)."""
        served = settings.local_mhs or self.directory.hosted_mhs.name
        for name in (served, *extra):
            app = create_inbound_app(
                settings, self.directory, broker=self.shared_broker, mhs_name=name
            )
            if name == served:
                url = await self._run("inbound", app, settings.inbound_port)
            else:
                endpoint = urlsplit(_endpoint_of(settings, self.directory, name))
                url = await self._run(
                    f"inbound:{name}",
                    app,
                    endpoint.port or (443 if endpoint.scheme == "https" else 80),
                    setting=f"MHS_REMOTE_INBOUND_PORT (or MHS {name}'s endpoint in the topology)",
                )
            if self.ephemeral_ports:
                overrides = {**settings.endpoint_overrides, name: url + "/reliablemessaging"}
                settings = settings.model_copy(update={"endpoint_overrides": overrides})
        return settings

    async def _run(
        self, role: str, app: web.Application, port: int, *, setting: str | None = None
    ) -> str:
        runner = web.AppRunner(
            app,
            shutdown_timeout=self.settings.shutdown_timeout_s,
            access_log=None,
            handle_signals=False,
        )
        await runner.setup()
        self.running.append(Running(role, runner, ""))
        tls = server_context(self.settings)
        port = 0 if self.ephemeral_ports else port
        site = web.TCPSite(runner, self.settings.host, port, ssl_context=tls)
        try:
            await site.start()
        except OSError as error:
            own = role.partition(":")[0].replace("-", "_").upper()
            setting = setting or f"MHS_{own}_PORT"
            raise PortUnavailable(
                f"{role} cannot listen on {self.settings.host}:{port} "
                f"({str(error.strerror or error).split(': ')[-1]}): set {setting} to a free port"
            ) from None
        host, bound = runner.addresses[0][:2]
        url = f"{'https' if tls else 'http'}://{host}:{bound}"
        self.running[-1].url = url
        return url

    async def stop(self) -> None:
        """Stop in reverse order: outbound first (no new work), inbound last."""
        while self.running:
            await self.running.pop().runner.cleanup()
        if self.shared_broker is not None:
            await self.shared_broker.stop()
            self.shared_broker = None


def _endpoint_of(settings: Settings, directory: Directory, mhs: str) -> str:
    """The effective inbound URL of MHS ``mhs`` (topology filled from the ports, override)."""
    entry = directory.mhs(mhs)
    if entry is None:
        raise ValueError(f"no MHS named {mhs!r} in {directory.source}")
    return settings.endpoint_of(mhs, entry.endpoint)


def local_others(settings: Settings, directory: Directory) -> list[str]:
    """The topology's other MHSs whose endpoints are on this host: ``serve all`` serves
    their inbound MHS too, so messages to their practices arrive rather than fail."""
    here = {"127.0.0.1", "localhost", "::1", settings.reachable_host}
    return [
        m.name
        for m in directory.topology.mhs
        if m.name != (settings.local_mhs or directory.hosted_mhs.name)
        and urlsplit(_endpoint_of(settings, directory, m.name)).hostname in here
    ]


class PortUnavailable(OSError):
    """A role's port is taken (or not ours to take): the text names the role, the address
    and the setting to change."""


class ServeFileError(OSError):
    """MHS_SERVE_FILE cannot be written."""


@contextlib.contextmanager
def serve_file(settings: Settings, urls: Mapping[str, str]) -> Iterator[None]:
    """Name the roles being served (role -> port) in MHS_SERVE_FILE while the block runs:
    ``mhs serve`` writes it once its roles are ready, for ``mhs healthcheck``."""
    path = settings.serve_file
    if path is None:
        yield
        return
    ports = {role: urlsplit(url).port for role, url in urls.items()}
    written = path.with_name(path.name + ".new")
    try:
        written.write_bytes(orjson.dumps({"pid": os.getpid(), "ports": ports}))
        written.replace(path)  # atomic: a probe never reads half a file
    except OSError as error:
        raise ServeFileError(
            f"cannot write MHS_SERVE_FILE {path} ({error.strerror}): set it to a writable "
            "path, or unset it"
        ) from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def served_ports(path: Path) -> dict[str, int]:
    """The roles and ports a running ``mhs serve`` named in ``path``."""
    ports: dict[str, int] = orjson.loads(path.read_bytes())["ports"]
    return ports


async def wait_for_stop_signal() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
