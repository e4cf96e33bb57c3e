"""Client certificates at the edge: what a request's TLS peer presented, and a middleware
for roles that only the Spine proxy may call."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from mhs.observe.events import Event
from mhs.roles.common import LOG, SETTINGS, text_error
from mhs.ssp import ClientCertificate, Refusal
from mhs.tls import certificate_names

Refuse = Callable[[web.Request, Refusal], web.StreamResponse]
# Health stays reachable for orchestrators that do not hold a client certificate.
_OPEN_PATHS = frozenset({"/healthz", "/healthcheck", "/readyz", "/metrics"})


def client_certificate(request: web.Request) -> ClientCertificate | None:
    """The peer's certificate names; None when TLS mutual authentication is off."""
    if not request.app[SETTINGS].tls or request.transport is None:
        return None
    return ClientCertificate(certificate_names(request.transport.get_extra_info("peercert")))


def only_from_spine_proxy(app: web.Application, refuse: Refuse) -> None:
    """With TLS on, refuse (496 none, 495 wrong name) any client of ``app`` but the Spine
    proxy, whose certificate must name MHS_SPINE_PROXY_FQDN. With TLS off there is nobody
    to tell apart, and no middleware on every request's path."""
    if app[SETTINGS].tls:
        app.middlewares.append(_spine_proxy_only(refuse))


def _spine_proxy_only(refuse: Refuse) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = client_certificate(request)
        if client is None or request.path in _OPEN_PATHS:
            return await handler(request)
        expected = request.app[SETTINGS].spine_proxy_fqdn
        if not client.names:
            return refuse(request, Refusal.certificate_required())
        if expected.lower() not in {name.lower() for name in client.names}:
            return refuse(
                request,
                Refusal.certificate_mismatch(
                    f"the client certificate names {', '.join(client.names)}, not the Spine "
                    f"proxy ({expected}); only the proxy may call this endpoint"
                ),
            )
        return await handler(request)

    return middleware


def text_refusal(event: Event) -> Refuse:
    """Refusals the NHS adaptor's way (text/plain), logged as ``event``, connection closed."""

    def refuse(request: web.Request, refusal: Refusal) -> web.StreamResponse:
        request.app[LOG].info(event, status=refusal.status, reason=refusal.detail)
        response = text_error(refusal.status, refusal.detail)
        response.force_close()
        return response

    return refuse
