"""TLS mutual authentication, on: certificates from a test CA (trustme), TLS 1.2 or later,
client certificates on every hop, and the SSP's 495/496 for the wrong or no certificate."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import trustme
import yaml

from mhs.directory import Directory, generate_topology, parse_topology
from mhs.directory.generate import topology_yaml
from mhs.ids import new_id
from mhs.observe.events import Event
from mhs.settings import Settings
from mhs.ssp.consumer_jwt import consumer_jwt
from mhs.tls import server_context

DATACENTRE = "datacentre.mhs.test"
PROXY = "spine-proxy.mhs.test"
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


class Pki:
    """A test CA and PEM files for the roles and for clients of our choosing."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = trustme.CA()
        self.ca_file = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        # One process runs every role here, so its certificate names both the datacentre
        # MHS (the worker's and outbound's identity) and the proxy; each role checks the
        # name it needs.
        self.roles = self.issue("roles", DATACENTRE, PROXY, "127.0.0.1")

    def issue(self, name: str, *names: str, ca: trustme.CA | None = None) -> tuple[Path, Path]:
        cert = (ca or self.ca).issue_cert(*names)
        chain = self.folder / f"{name}.pem"
        key = self.folder / f"{name}.key"
        chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key))
        return chain, key

    def settings(self) -> dict[str, Any]:
        cert, key = self.roles
        return {"tls_cert": cert, "tls_key": key, "tls_ca": self.ca_file, "spine_proxy_fqdn": PROXY}

    def client(self, identity: tuple[Path, Path] | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if identity is not None:
            context.load_cert_chain(str(identity[0]), str(identity[1]))
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def tls_directory() -> Directory:
    data = yaml.safe_load(topology_yaml(generate_topology(4, 2)))
    data["mhs"][0]["fqdn"] = DATACENTRE
    data["mhs"][1]["fqdn"] = "remote.mhs.test"
    return Directory(parse_topology(data, "tls test"))


async def _use_client(h: Any, context: ssl.SSLContext) -> None:
    await h.http.close()
    h.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


@pytest.mark.rabbitmq
async def test_a_message_crosses_every_hop_with_client_certificates(
    harness_factory: Any, pki: Pki
) -> None:
    h = await harness_factory(directory=tls_directory(), **pki.settings())
    assert all(url.startswith("https://") for url in h.cluster.urls.values())
    await _use_client(h, pki.client(None))
    message_id = new_id()
    response = await h.send("918000000001", ods_code="A80002", message_id=message_id)
    assert response.status == 202
    delivery = await h.take(h.settings.inbound_queue("918000000002"))
    assert delivery.message_id == message_id
    forwarded = await h.logged(Event.PROXY_FORWARDED, message_id)
    assert [e["status"] for e in forwarded] == [200]


@pytest.mark.rabbitmq
async def test_gp_connect_round_trip_over_tls(harness_factory: Any, pki: Pki) -> None:
    h = await harness_factory(
        ("gp-provider", "spine-proxy", "outbound"), directory=tls_directory(), **pki.settings()
    )
    await _use_client(h, pki.client(None))
    headers = {
        "Mhs-Credential": h.token("918000000001"),
        "Ssp-InteractionID": METADATA,
        "Authorization": "Bearer " + consumer_jwt(audience="x"),
    }
    async with h.http.get(h.url("outbound") + "/gpconnect/A80002/metadata", headers=headers) as r:
        assert r.status == 200, await r.text()
    assert [e["status"] for e in h.events(Event.PROVIDER_ANSWERED)] == [200]


def _ebxml_headers() -> dict[str, str]:
    return {
        "Ssp-TraceID": str(uuid.uuid4()),
        "Ssp-From": "918000000001",
        "Ssp-To": "918000000002",
        "Ssp-InteractionID": "RCMR_IN010000UK05",
    }


async def _post(
    url: str, context: ssl.SSLContext, headers: dict[str, str] | None = None
) -> tuple[int, str, bool]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
        http.post(url, data=b"x", headers=headers or {}) as response,
    ):
        text = await response.text()
        return response.status, text, response.headers.get("Connection") == "close"


@pytest.mark.rabbitmq
async def test_the_proxy_refuses_no_certificate_496_and_a_wrong_name_495(
    harness_factory: Any, pki: Pki
) -> None:
    h = await harness_factory(("spine-proxy",), directory=tls_directory(), **pki.settings())
    url = h.url("spine-proxy") + "/reliablemessaging/forwardreliable"

    status, text, closed = await _post(url, pki.client(None), _ebxml_headers())
    assert (status, closed) == (496, True)
    assert orjson.loads(text)["issue"][0]["details"]["coding"][0]["display"] == (
        "SSL_CERTIFICATE_REQUIRED"
    )

    intruder = pki.client(pki.issue("intruder", "intruder.mhs.test"))
    status, text, closed = await _post(url, intruder, _ebxml_headers())
    assert (status, closed) == (495, True)
    issue = orjson.loads(text)["issue"][0]
    assert issue["details"]["coding"][0]["display"] == "SSL_CERTIFICATE_ERROR"
    assert (
        f"not {DATACENTRE}, the FQDN registered for Ssp-From 918000000001" in (issue["diagnostics"])
    )

    # The right name passes the certificate checks and meets the next one (the body).
    rightful = pki.client(pki.issue("datacentre", DATACENTRE))
    status, text, _ = await _post(url, rightful, _ebxml_headers())
    assert status == 400
    assert "not an ebXML message" in text

    # A certificate from another CA does not get through the handshake at all.
    stranger = pki.client(pki.issue("stranger", DATACENTRE, ca=trustme.CA()))
    with pytest.raises(aiohttp.ClientError):
        await _post(url, stranger, _ebxml_headers())
    refused = [e["status"] for e in h.events(Event.PROXY_REFUSED)]
    assert refused == [496, 495, 400]


@pytest.mark.rabbitmq
async def test_inbound_accepts_only_the_proxy(harness_factory: Any, pki: Pki) -> None:
    h = await harness_factory(("inbound",), directory=tls_directory(), **pki.settings())
    url = h.url("inbound") + "/reliablemessaging/forwardreliable"
    status, text, closed = await _post(url, pki.client(None))
    assert (status, closed) == (496, True)
    assert "no client certificate" in text
    datacentre = pki.client(pki.issue("datacentre", DATACENTRE))
    status, text, closed = await _post(url, datacentre, _ebxml_headers())
    assert (status, closed) == (495, True)
    assert f"not the Spine proxy ({PROXY})" in text
    proxy = pki.client(pki.issue("proxy", PROXY))
    status, text, _ = await _post(url, proxy)
    assert status == 415  # past the certificate check: the body is not multipart
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=pki.client(None))) as http,
        http.get(h.url("inbound") + "/readyz") as response,
    ):
        assert response.status == 200  # health needs no certificate


@pytest.mark.rabbitmq
async def test_tls_below_1_2_is_refused(harness_factory: Any, pki: Pki) -> None:
    h = await harness_factory(("spine-proxy",), directory=tls_directory(), **pki.settings())
    port = int(h.url("spine-proxy").rsplit(":", 1)[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = pki.client(None)
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        # The control: a server that allows TLS 1.1 does talk to this client ...
        permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        permissive.load_cert_chain(*[str(p) for p in pki.roles])
        permissive.minimum_version = ssl.TLSVersion.TLSv1_1
        permissive.set_ciphers("DEFAULT:@SECLEVEL=0")

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    control = await asyncio.start_server(hello, "127.0.0.1", 0, ssl=permissive)
    control_port = control.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", control_port, ssl=old)
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.1"
        writer.close()
    finally:
        control.close()
        await control.wait_closed()
    # ... and ours does not (an alert, or the connection reset: both are OSErrors).
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await asyncio.open_connection("127.0.0.1", port, ssl=old)
    # A modern client gets TLS 1.2 or later.
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=pki.client(None))
    assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    writer.close()


def test_tls_is_off_unless_configured(pki: Pki) -> None:

    assert server_context(Settings()) is None
    context = server_context(Settings(**pki.settings()))
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_OPTIONAL
    with pytest.raises(ValueError, match="tls_cert, tls_key and tls_ca go together"):
        Settings(tls_cert=pki.roles[0])


def test_the_healthcheck_asks_over_tls_when_tls_is_on(pki: Pki) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tls = {f"MHS_{key.upper()}": str(value) for key, value in pki.settings().items()}
    env = {**os.environ, **tls, "MHS_OUTBOUND_PORT": str(port), "MHS_LOG_LEVEL": "WARNING"}
    mhs = [sys.executable, "-m", "mhs"]
    proc = subprocess.Popen([*mhs, "serve", "outbound"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            check = subprocess.run(
                [*mhs, "healthcheck", "outbound"],
                env=env,
                capture_output=True,
                timeout=20,
                check=False,
            )
            if check.returncode == 0:
                break
            assert time.monotonic() < deadline, check.stderr.decode()
            time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
