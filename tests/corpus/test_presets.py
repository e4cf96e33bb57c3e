"""The corpus's control: each preset request, unbroken, goes through."""

from __future__ import annotations

from typing import Any

import pytest

from tests.corpus.requests import preset_case
from tests.corpus.test_corpus import send

pytestmark = pytest.mark.rabbitmq


@pytest.mark.parametrize(
    ("preset", "target", "status"),
    [
        ("outbound-api", "outbound", 202),
        ("outbound-gpconnect", "outbound", 200),
        ("proxy-ebxml", "proxy", 200),
        ("proxy-gpconnect", "proxy", 200),
        ("inbound", "inbound", 200),
    ],
)
async def test_presets_are_accepted(
    harness_factory: Any, preset: str, target: str, status: int
) -> None:
    h = await harness_factory(("inbound", "gp-provider", "spine-proxy", "outbound"))
    answer, text = await send(h, preset_case(preset, target))
    assert answer == status, text
