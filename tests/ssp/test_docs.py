"""docs/spine-proxy.md documents the checks in the order the code applies them."""

from __future__ import annotations

import re
from pathlib import Path

from mhs.ssp import CHECK_ORDER

DOC = (Path(__file__).parents[2] / "docs/spine-proxy.md").read_text()


def test_the_documented_order_is_the_order_applied() -> None:
    rows = re.findall(r"^\| (\d+) \| `([a-z_]+)` \|", DOC, flags=re.MULTILINE)
    assert [int(number) for number, _ in rows] == list(range(1, len(rows) + 1))
    assert tuple(name for _, name in rows) == CHECK_ORDER
