"""The provider's audit trail on real roles: requests through outbound -> Spine proxy ->
gp-provider are audited with who asked, refusals too; ``mhs audit`` lists and verifies the
trail, and finds an entry edited, removed or moved in the file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from mhs.observe.events import Event
from mhs.provider.audit import GENESIS
from mhs.provider.audit_file import AuditFile, audit_path
from mhs.provider.records import patients_of
from mhs.ssp.consumer_jwt import consumer_jwt
from mhs.ssp.jwt_claims import decode_unsigned
from tests.gpconnect.test_round_trip import METADATA, SEARCH, STRUCTURED, _call, _parameters
from tests.isolation.test_tls import DATACENTRE, PROXY, Pki, tls_directory

pytestmark = pytest.mark.rabbitmq

ROLES = ("gp-provider", "spine-proxy", "outbound")
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ROOT = Path(__file__).parents[2]


async def _trail(h: Any, query: str = "") -> dict[str, Any]:
    async with h.http.get(h.url("gp-provider") + "/audit" + query) as response:
        assert response.status == 200, await response.text()
        trail: dict[str, Any] = orjson.loads(await response.read())
        return trail


async def _mhs(*args: str, audit_dir: Path) -> tuple[int, str, str]:
    """``python -m mhs ARGS`` as a user runs it: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mhs",
        *args,
        cwd=ROOT,
        env={**os.environ, "MHS_AUDIT_DIR": str(audit_dir)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_an_allowed_request_is_audited_with_who_asked(
    harness_factory: Any, tmp_path: Path
) -> None:
    h = await harness_factory(ROLES, audit_dir=tmp_path)
    patient = patients_of("A80002")[0]
    jwt = consumer_jwt(audience="https://provider.invalid", user_id="G13579")
    query = f"identifier={NHS_SYSTEM}|{patient.nhs_number}"
    response, body = await _call(h, "GET", f"/gpconnect/A80002/Patient?{query}", SEARCH, jwt=jwt)
    assert response.status == 200, body

    [entry] = (await _trail(h))["entries"]
    assert entry["consumer_asid"] == "918000000001"
    assert (entry["provider_asid"], entry["provider_ods"]) == ("918000000002", "A80002")
    # The originating organisation, filled by the outbound MHS from the sender's own.
    assert entry["organisation"]["ods_code"] == "A80001"
    assert entry["organisation"]["name"] == h.directory.by_asid("918000000001").name
    assert entry["practitioner"]["sds_user_id"] == "G13579"
    assert entry["practitioner"]["id"] == decode_unsigned(jwt)["sub"]
    assert entry["device"]["model"] == "mhs-simulator"
    assert entry["interaction"] == SEARCH
    assert entry["patient"] == patient.nhs_number
    assert entry["outcome"] == {"status": 200, "code": None, "detail": None}
    uuid.UUID(entry["trace_id"])
    assert (entry["seq"], entry["prev"]) == (1, GENESIS)


async def test_refusals_are_audited_with_their_outcome(
    harness_factory: Any, tmp_path: Path
) -> None:
    h = await harness_factory(ROLES, audit_dir=tmp_path)
    response, _ = await _call(
        h,
        "POST",
        "/gpconnect/A80002/Patient/$gpc.getstructuredrecord",
        STRUCTURED,
        body=_parameters("9000000009"),  # valid, but not registered at A80002
    )
    assert response.status == 404
    # Straight to the provider (no TLS here), with a token it cannot read.
    async with h.http.get(
        h.url("gp-provider") + "/A80002/STU3/1/gpconnect/metadata",
        headers={
            "Ssp-TraceID": str(uuid.uuid4()),
            "Ssp-From": "918000000007",
            "Ssp-To": "918000000002",
            "Ssp-InteractionID": METADATA,
            "Authorization": "Bearer not-a-jwt",
        },
    ) as response:
        assert response.status == 400

    not_found, bad_jwt = (await _trail(h))["entries"]
    assert not_found["outcome"]["status"] == 404
    assert not_found["outcome"]["code"] == "PATIENT_NOT_FOUND"
    assert not_found["patient"] == "9000000009"
    assert not_found["organisation"]["ods_code"] == "A80001"
    assert bad_jwt["outcome"]["status"] == 400
    assert bad_jwt["outcome"]["code"] == "BAD_REQUEST"
    assert "three base64url parts" in bad_jwt["outcome"]["detail"]
    assert bad_jwt["consumer_asid"] == "918000000007"
    assert bad_jwt["interaction"] == METADATA
    assert (bad_jwt["organisation"], bad_jwt["practitioner"], bad_jwt["device"]) == (
        None,
        None,
        None,
    )
    assert bad_jwt["prev"] == not_found["hash"]


async def test_the_trail_survives_a_restart_and_mhs_audit_verifies_it(
    harness_factory: Any, tmp_path: Path
) -> None:
    first = await harness_factory(ROLES, audit_dir=tmp_path)
    for _ in range(2):
        response, _ = await _call(first, "GET", "/gpconnect/A80002/metadata", METADATA)
        assert response.status == 200
    before = (await _trail(first))["head"]
    assert before["seq"] == 2
    await first.cluster.stop()

    second = await harness_factory(ROLES, audit_dir=tmp_path)
    assert (await _trail(second))["head"] == before  # found at start, from the file
    response, _ = await _call(second, "GET", "/gpconnect/A80002/metadata", METADATA)
    assert response.status == 200
    trail = await _trail(second)
    assert [e["seq"] for e in trail["entries"]] == [1, 2, 3]
    assert trail["entries"][2]["prev"] == before["hash"]
    assert (await _trail(second, "?since=1&limit=1"))["entries"] == trail["entries"][1:2]

    url = second.url("gp-provider")
    code, out, err = await _mhs("audit", "verify", "--url", url, audit_dir=tmp_path)
    assert (code, err) == (0, "")
    assert "audit chain holds: 3 entries, head 3" in out
    code, out, _ = await _mhs("audit", "list", "--url", url, "--json", audit_dir=tmp_path)
    assert code == 0
    assert orjson.loads(out)["entries"] == trail["entries"]
    # The served MHS's file is the default: no --url, no --file.
    code, out, _ = await _mhs("audit", "list", audit_dir=tmp_path)
    assert code == 0
    assert "3 audit entries" in out
    assert "A80001" in out


def _tampered(lines: list[bytes], how: str) -> list[bytes]:
    if how == "edited":
        fields = orjson.loads(lines[1])
        fields["organisation"]["ods_code"] = "A80009"
        return [lines[0], orjson.dumps(fields, option=orjson.OPT_SORT_KEYS), *lines[2:]]
    if how == "removed":
        return [lines[0], *lines[2:]]
    return [lines[0], lines[2], lines[1], *lines[3:]]


@pytest.mark.parametrize(
    ("how", "names"),
    [
        ("edited", "line 2 (entry 2): its content does not match its hash"),
        ("removed", "line 2 (entry 3): entry 2 before it is missing"),
        ("reordered", "line 2 (entry 3): entry 2 before it is missing"),
    ],
)
async def test_mhs_audit_verify_names_a_tampered_entry(
    harness_factory: Any, tmp_path: Path, how: str, names: str
) -> None:
    h = await harness_factory(ROLES, audit_dir=tmp_path)
    for _ in range(4):
        response, _ = await _call(h, "GET", "/gpconnect/A80002/metadata", METADATA)
        assert response.status == 200
    await h.cluster.stop()
    path = audit_path(tmp_path, h.directory.hosted_mhs.name)
    code, out, _ = await _mhs("audit", "verify", "--file", str(path), audit_dir=tmp_path)
    assert code == 0, out

    lines = path.read_bytes().splitlines()
    assert len(lines) == 4
    path.write_bytes(b"\n".join(_tampered(lines, how)) + b"\n")
    code, out, err = await _mhs("audit", "verify", "--file", str(path), audit_dir=tmp_path)
    assert code == 1
    assert names in err
    assert "audit chain holds" not in out


async def test_an_entry_that_cannot_be_written_withholds_the_answer(
    harness_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await harness_factory(ROLES, audit_dir=tmp_path)

    def disk_full(self: AuditFile, drafts: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AuditFile, "append", disk_full)
    response, body = await _call(h, "GET", "/gpconnect/A80002/metadata", METADATA)
    assert response.status == 500
    coding = orjson.loads(body)["issue"][0]["details"]["coding"][0]
    assert coding["code"] == "INTERNAL_SERVER_ERROR"
    assert b"CapabilityStatement" not in body
    [failed] = h.events(Event.PROVIDER_AUDIT_FAILED)
    assert "No space left on device" in failed["reason"]


async def test_with_tls_on_only_the_spine_proxy_reads_the_trail(
    harness_factory: Any, tmp_path: Path
) -> None:
    pki = Pki(tmp_path)
    h = await harness_factory(
        ("gp-provider",), directory=tls_directory(), audit_dir=tmp_path, **pki.settings()
    )
    url = h.url("gp-provider")
    datacentre = pki.client(pki.issue("datacentre", DATACENTRE))
    proxy = pki.client(pki.issue("proxy", PROXY))
    async with aiohttp.ClientSession() as http:
        for context, status in ((pki.client(None), 496), (datacentre, 495)):
            async with http.get(url + "/audit", ssl=context) as response:
                assert response.status == status
        # A GP Connect request refused for its certificate is audited all the same.
        async with http.get(url + "/A80002/STU3/1/gpconnect/metadata", ssl=datacentre) as r:
            assert r.status == 495
        async with http.get(url + "/audit", ssl=proxy) as response:
            assert response.status == 200
            [entry] = orjson.loads(await response.read())["entries"]
    assert entry["outcome"]["status"] == 495
    assert entry["path"] == "/A80002/STU3/1/gpconnect/metadata"


async def test_verify_from_the_provider_sees_entries_cut_off_the_end(
    harness_factory: Any, tmp_path: Path
) -> None:
    h = await harness_factory(ROLES, audit_dir=tmp_path)
    for _ in range(3):
        response, _ = await _call(h, "GET", "/gpconnect/A80002/metadata", METADATA)
        assert response.status == 200
    path = audit_path(tmp_path, h.directory.hosted_mhs.name)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]))
    url = h.url("gp-provider")
    code, _, _ = await _mhs("audit", "verify", "--file", str(path), audit_dir=tmp_path)
    assert code == 0  # the file alone cannot tell
    code, _, err = await _mhs("audit", "verify", "--url", url, audit_dir=tmp_path)
    assert code == 1
    assert "but the provider wrote up to entry 3" in err

    path.write_bytes(b"".join(lines) + b"not json\n")
    assert (await _trail(h))["entries"][3] == {"damaged_line": "not json"}
    code, _, err = await _mhs("audit", "verify", "--url", url, audit_dir=tmp_path)
    assert code == 1
    assert "line 4" in err


def test_a_folder_that_cannot_be_written_stops_serve_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "mhs", "serve", "gp-provider"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={
            **os.environ,
            "MHS_AUDIT_DIR": str(blocker / "audit"),
            "MHS_GP_PROVIDER_PORT": "0",
            "MHS_LOG_LEVEL": "WARNING",
        },
        check=False,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("cannot start: cannot write the audit file")
    assert "set MHS_AUDIT_DIR to a writable folder" in line
