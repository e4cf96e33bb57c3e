"""The Spine proxy over HTTP: answers in the asked format, case-insensitive headers, 405,
and GP Connect requests passed through unmodified to a real provider server on port 0."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs
from yarl import URL

from mhs.directory import load_topology
from mhs.ebxml.safexml import parse_xml
from mhs.gpconnect.fhir import NS_FHIR
from mhs.ids import new_id
from mhs.messages.records import OutboundRecord
from mhs.runner import Cluster
from mhs.settings import Settings
from mhs.spine.requests import spine_request
from mhs.ssp.consumer_jwt import consumer_jwt

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
SEARCH = "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1"
Server = Callable[[web.Application], Awaitable[TestServer]]


class Proxy:
    def __init__(self, cluster: Cluster, http: aiohttp.ClientSession, logs: list[Any]) -> None:
        self.cluster = cluster
        self.http = http
        self.logs = logs

    @property
    def url(self) -> str:
        return self.cluster.urls["spine-proxy"]

    def events(self, name: str) -> list[Any]:
        return [e for e in self.logs if e.get("event") == name]


@pytest.fixture
async def start_proxy() -> AsyncIterator[Callable[..., Awaitable[Proxy]]]:
    started: list[Proxy] = []
    with capture_logs() as logs:

        async def start(**overrides: Any) -> Proxy:
            settings = Settings(**{"forward_timeout_s": 2.0, **overrides})
            cluster = Cluster(settings, load_topology(), ephemeral_ports=True)
            await cluster.start(["spine-proxy"])
            proxy = Proxy(cluster, aiohttp.ClientSession(), logs)
            started.append(proxy)
            return proxy

        yield start
        for proxy in started:
            await proxy.http.close()
            await proxy.cluster.stop()


@pytest.fixture
async def provider(aiohttp_server: Server) -> TestServer:
    """A GP Connect provider that answers with what it was sent."""

    async def echo(request: web.Request) -> web.StreamResponse:
        if request.headers.get("X-Refuse"):
            return web.json_response({"resourceType": "OperationOutcome", "x": 1}, status=422)
        seen = {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": (await request.read()).decode(),
        }
        response = web.StreamResponse(headers={"Content-Type": "application/fhir+json"})
        response.headers["X-Provider"] = "yes"
        await response.prepare(request)
        body = orjson.dumps(seen)
        # Several chunks, so the proxy has a stream to pass on.
        for start in range(0, len(body), 100):
            await response.write(body[start : start + 100])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return await aiohttp_server(app)


def _gpc_headers(interaction: str = METADATA, **extra: str) -> dict[str, str]:
    return {
        "Ssp-TraceID": str(uuid.uuid4()),
        "Ssp-From": "918000000001",
        "Ssp-To": "918000000002",
        "Ssp-InteractionID": interaction,
        "Authorization": "Bearer " + consumer_jwt(audience="x", ods_code="A80001"),
        **extra,
    }


def _root(server: TestServer) -> str:
    return f"http://127.0.0.1:{server.port}/A80002/STU3/1/gpconnect"


async def test_refusals_come_as_json_or_xml_as_asked(start_proxy: Any) -> None:
    proxy = await start_proxy()
    url = proxy.url + "/reliablemessaging/forwardreliable"
    async with proxy.http.post(url, data=b"x", headers={"Accept": "application/fhir+xml"}) as r:
        assert r.status == 400
        assert r.headers["Content-Type"] == "application/fhir+xml; charset=utf-8"
        root = parse_xml(await r.read(), "reply")
    ns = {"f": NS_FHIR}
    assert root.xpath("f:issue/f:details/f:coding/f:display/@value", namespaces=ns) == [
        "BAD_REQUEST"
    ]
    async with proxy.http.post(
        url + "?_format=json", data=b"x", headers={"Accept": "text/xml"}
    ) as r:
        assert r.status == 400
        assert r.headers["Content-Type"].startswith("application/fhir+json")
        body = await r.json(content_type=None)
    assert body["issue"][0]["diagnostics"].startswith("missing header(s): Ssp-TraceID")


async def test_header_names_are_case_insensitive(start_proxy: Any, aiohttp_server: Server) -> None:
    received: list[dict[str, str]] = []

    async def inbound(request: web.Request) -> web.Response:
        received.append(dict(request.headers))
        return web.Response(status=202)

    fake_inbound = web.Application()
    fake_inbound.router.add_post("/{tail:.*}", inbound)
    server = await aiohttp_server(fake_inbound)
    proxy = await start_proxy(endpoint_overrides={"datacentre": str(server.make_url("/rm"))})
    directory = load_topology()
    recipient = directory.by_asid("918000000002")
    interaction = directory.interaction("RCMR_IN010000UK05")
    assert recipient is not None
    assert interaction is not None
    message_id = new_id()
    record = OutboundRecord(
        message_id=message_id,
        correlation_id=message_id,
        interaction_id="RCMR_IN010000UK05",
        from_asid="918000000001",
        from_party_key="A80001-0000001",
        from_ods="A80001",
        to_asid="918000000002",
        to_party_key=recipient.party_key,
        to_ods="A80002",
        payload="<x/>",
        accepted_at=0,
    )
    request = spine_request(record, interaction, recipient)
    odd_case = {
        ("SSP-TRACEID" if k == "Ssp-From" else k.lower()): v for k, v in request.headers.items()
    }
    odd_case["SSP-TRACEID"] = str(uuid.uuid4())
    odd_case["ssp-from"] = "918000000001"
    async with proxy.http.post(
        proxy.url + request.path, data=request.body, headers=odd_case
    ) as response:
        assert response.status == 202, await response.text()
    assert len(received) == 1
    assert [e["message_id"] for e in proxy.events("proxy.forwarded")] == [message_id]


async def test_a_method_the_proxy_does_not_take_is_405_fatal(start_proxy: Any) -> None:
    proxy = await start_proxy()
    async with proxy.http.get(proxy.url + "/reliablemessaging/forwardreliable") as response:
        assert response.status == 405
        issue = (await response.json(content_type=None))["issue"][0]
    assert issue["severity"] == "fatal"
    assert issue["details"]["coding"][0]["display"] == "405: Method Not Allowed"


async def test_gp_connect_requests_pass_through_unmodified(
    start_proxy: Any, provider: TestServer
) -> None:
    proxy = await start_proxy(gpconnect_overrides={"datacentre": str(provider.make_url(""))})
    query = "identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9000000009&_x=a+b"
    target = f"{_root(provider)}/Patient?{query}"
    headers = _gpc_headers(SEARCH, **{"X-Custom": "kept", "Accept": "application/fhir+json"})
    async with proxy.http.get(URL(f"{proxy.url}/{target}", encoded=True), headers=headers) as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["X-Provider"] == "yes"
        seen = await r.json(content_type=None)
    assert seen["method"] == "GET"
    assert seen["raw_path"] == f"/A80002/STU3/1/gpconnect/Patient?{query}"
    got = {k.lower(): v for k, v in seen["headers"]}
    for name, value in headers.items():
        assert got[name.lower()] == value
    assert got["forwarded"].startswith("for=127.0.0.1;proto=http;host=")
    [forwarded] = proxy.events("proxy.forwarded")
    assert forwarded["status"] == 200
    assert forwarded["from_ods"] == "A80001"
    assert forwarded["trace_id"] == headers["Ssp-TraceID"]


async def test_a_provider_refusal_is_passed_back_as_it_came(
    start_proxy: Any, provider: TestServer
) -> None:
    proxy = await start_proxy(gpconnect_overrides={"datacentre": str(provider.make_url(""))})
    url = f"{proxy.url}/{_root(provider)}/metadata"
    async with proxy.http.get(url, headers=_gpc_headers(**{"X-Refuse": "1"})) as response:
        assert response.status == 422
        assert await response.json(content_type=None) == {
            "resourceType": "OperationOutcome",
            "x": 1,
        }
    assert [e["status"] for e in proxy.events("proxy.forwarded")] == [422]


async def test_an_unreachable_provider_gets_502(start_proxy: Any) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    proxy = await start_proxy(gpconnect_overrides={"datacentre": closed})
    target = f"{closed}/A80002/STU3/1/gpconnect/metadata"
    async with proxy.http.get(f"{proxy.url}/{target}", headers=_gpc_headers()) as response:
        assert response.status == 502
        coding = (await response.json(content_type=None))["issue"][0]["details"]["coding"][0]
    assert coding["display"] == f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{target}"


async def test_a_provider_slower_than_the_timeout_gets_504(
    start_proxy: Any, aiohttp_server: Server
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.Response()

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    server = await aiohttp_server(app)
    proxy = await start_proxy(
        forward_timeout_s=0.3, gpconnect_overrides={"datacentre": str(server.make_url(""))}
    )
    target = f"{_root(server)}/metadata"
    async with proxy.http.get(f"{proxy.url}/{target}", headers=_gpc_headers()) as response:
        assert response.status == 504
        issue = (await response.json(content_type=None))["issue"][0]
    assert issue["code"] == "transient"
    assert (
        issue["details"]["coding"][0]["display"] == f"ERROR_COMMUNICATING_TO_ENDPOINT_URL_{target}"
    )


async def test_bodies_over_the_cap_are_refused_413(start_proxy: Any, provider: TestServer) -> None:
    proxy = await start_proxy(
        max_request_bytes=2048, gpconnect_overrides={"datacentre": str(provider.make_url(""))}
    )
    big = b"x" * 5000
    async with proxy.http.post(
        proxy.url + "/reliablemessaging/forwardreliable",
        data=big,
        headers={
            k: v for k, v in _gpc_headers("RCMR_IN010000UK05").items() if k != "Authorization"
        },
    ) as response:
        assert response.status == 413
    url = f"{proxy.url}/{_root(provider)}/metadata"
    async with proxy.http.get(url, data=big, headers=_gpc_headers()) as response:
        assert response.status == 413
        body = await response.json(content_type=None)
    assert body["issue"][0]["details"]["coding"][0]["display"] == "REQUEST_TOO_LARGE"
    assert not proxy.events("proxy.forwarded")


def _free_port() -> int:

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
