"""``mhs healthcheck``: a role's readiness as an exit code, for container HEALTHCHECKs.

The image sets MHS_SERVE_FILE, so its HEALTHCHECK (``mhs healthcheck`` with no role) checks
exactly what ``docker run IMAGE serve worker`` started (mhs.runner.serve_file): one worker,
not five ports of which four are closed.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Annotated

import typer

from mhs.cli.common import err, settings_from
from mhs.runner import served_ports
from mhs.settings import Settings
from mhs.tls import client_context

ROLE_HELP = "outbound, worker, spine-proxy, inbound, gp-provider, sds or all"


def _ports(settings: Settings, role: str | None) -> dict[str, int]:
    ports = {
        "outbound": settings.outbound_port,
        "worker": settings.worker_port,
        "spine-proxy": settings.spine_proxy_port,
        "inbound": settings.inbound_port,
        "gp-provider": settings.gp_provider_port,
        "sds": settings.sds_port,
    }
    if role is None and settings.serve_file is not None:
        try:
            served = served_ports(settings.serve_file)
        except FileNotFoundError:
            err.print(
                f"not ready: nothing is serving yet ({settings.serve_file} is written by "
                "`mhs serve` once its roles are ready)"
            )
            raise typer.Exit(1) from None
        return served
    if role in (None, "all"):
        return ports
    if role not in ports:
        err.print(f"[red]unknown role {role!r}[/red]: choose from {', '.join(ports)}, all")
        raise typer.Exit(2)
    return {role: ports[role]}


def healthcheck(
    role: Annotated[str | None, typer.Argument(envvar="MHS_ROLE", help=ROLE_HELP)] = None,
    timeout: Annotated[float, typer.Option(help="seconds per role")] = 3.0,
) -> None:
    """Exit 0 if ROLE on this host answers ready, 1 otherwise (for container HEALTHCHECK).
    Without ROLE: the roles `mhs serve` named in MHS_SERVE_FILE, else every role."""
    settings = settings_from()
    tls = client_context(settings)
    if tls is not None:
        # The probe asks this host's own role by address, which the role's certificate
        # need not name: it still checks the chain against MHS_TLS_CA and presents ours.
        tls.check_hostname = False
    for name, port in _ports(settings, role).items():
        url = f"{'https' if tls else 'http'}://{settings.reachable_host}:{port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=tls) as response:  # noqa: S310  http or https, set above
                ready = response.status == 200
        except (urllib.error.URLError, OSError) as error:
            err.print(f"{name} not ready: {error}")
            raise typer.Exit(1) from None
        if not ready:
            raise typer.Exit(1)
