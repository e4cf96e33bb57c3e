"""A simulated GP Connect consumer finds providers through the sds role, as real ones must."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from mhs.gpconnect.interactions import service_root
from mhs.simulate.sds_lookup import SdsLookupFailed, find_provider
from tests.roles.conftest import Harness

STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


async def test_the_provider_is_where_sds_says(harness_factory: Callable[..., Any]) -> None:
    h: Harness = await harness_factory(("gp-provider", "sds"))
    route = await find_provider(h.http, h.url("sds"), "A80003", STRUCTURED)
    provider = h.directory.gpconnect_provider("A80003")
    assert provider is not None
    assert route.asid == provider.asid
    assert route.nhs_mhs_id == provider.cpa_id
    assert route.address == service_root(h.url("gp-provider"), "A80003", "structured")
    foundations = await find_provider(h.http, h.url("sds"), "A80003", METADATA)
    assert foundations.address == service_root(h.url("gp-provider"), "A80003", "foundations")


async def test_no_provider_and_a_wrong_url_fail_with_their_reason(
    harness_factory: Callable[..., Any],
) -> None:
    h: Harness = await harness_factory(("gp-provider", "sds"))
    with pytest.raises(SdsLookupFailed, match="provider Device: SDS has no record"):
        await find_provider(h.http, h.url("sds"), "Z99999", STRUCTURED)
    # A remote practice has no GP Connect provider in the default topology.
    with pytest.raises(SdsLookupFailed, match="provider Device: SDS has no record"):
        await find_provider(h.http, h.url("sds"), "B80001", STRUCTURED)
    with pytest.raises(SdsLookupFailed, match="provider Device: SDS answered 400"):
        await find_provider(h.http, h.url("sds"), "not an ods|code", "")
    with pytest.raises(SdsLookupFailed, match="did not answer"):
        async with aiohttp.ClientSession() as session:
            await find_provider(session, "http://127.0.0.1:9", "A80001", STRUCTURED)
