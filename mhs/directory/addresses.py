"""Where this simulator's own roles listen, for a topology's endpoints to name.

An endpoint may be written as a template, ``{scheme}://{host}:{inbound_port}/reliablemessaging``:
the directory fills it from the settings (MHS_HOST, MHS_INBOUND_PORT, TLS on or off), so
moving a port moves the endpoint the Spine proxy forwards to. A plain URL is used as written.
"""

from __future__ import annotations

import string
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class LocalAddresses:
    """What the placeholders of an endpoint template stand for."""

    scheme: str = "http"
    host: str = "127.0.0.1"
    inbound_port: int = 8082
    remote_inbound_port: int = 8084
    gp_provider_port: int = 8085

    def fill(self, template: str) -> str:
        """``template`` with its placeholders replaced; ValueError names an unknown one."""
        values = asdict(self)
        unknown = sorted(set(placeholders(template)) - set(values))
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}} in {template!r}: use "
                + ", ".join(f"{{{name}}}" for name in values)
            )
        return template.format_map(values)


def placeholders(template: str) -> list[str]:
    """The names between braces in ``template``."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:  # an unmatched brace
        raise ValueError(f"{template!r}: {error}") from None
